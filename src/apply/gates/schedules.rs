//! The scheduled jobs' gate: each timer started is active, so its job will run.
use anyhow::{bail, Result};

use super::super::health::{retry_until, HALF_SECOND};
use super::super::remote::Remote;
use super::Gates;
use crate::plan::UnitChange;

impl<R: Remote> Gates<'_, R> {
    pub(super) async fn schedules(&self, actions: &[(&str, &UnitChange)]) -> Result<()> {
        for (h, u) in actions {
            let conn = &self.conns[*h];
            let timer = u.unit.file_name();
            let active = retry_until(self.deadline, HALF_SECOND, || async {
                if !conn.run(&crate::shell::is_active(&timer)).await?.success() {
                    bail!("{timer} is not active");
                }
                Ok(())
            });
            self.wait_for(h, Some(u.unit), &format!("{timer} active"), active)
                .await?;
        }
        Ok(())
    }
}
