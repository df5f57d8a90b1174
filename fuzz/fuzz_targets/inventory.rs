//! The inventory parser: any text, valid TOML or not, gives an inventory or a list of
//! problems, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Relative paths in the inventory are only joined to the base directory, never read.
    match provisioner::inventory::parse(&text, Path::new("/nonexistent/fuzz")) {
        Ok(loaded) => {
            // Validation refuses an inventory without hosts.
            assert!(!loaded.cluster.hosts.is_empty());
        }
        Err(problems) => assert!(!problems.is_empty(), "refused without a reason"),
    }
});
