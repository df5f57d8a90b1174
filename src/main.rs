mod inventory;
mod pki;
fn main() {
    let l = inventory::load(std::path::Path::new(&std::env::args().nth(1).unwrap())).unwrap();
    let (_p, r) = pki::ensure(&l.cluster).unwrap();
    println!("{r:#?}");
}
