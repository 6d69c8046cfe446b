//! Which member of the cluster map a server or proxy process is: `--id N`, or
//! `--ordinal I`, the map's I-th server (or proxy) counting from 0, which is how a
//! Kubernetes StatefulSet numbers its pods, so that one pod template serves them all.

/// The command-line arguments naming this process's place in the map.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct MemberArgs {
    /// Which one of the map to run, by its id.
    #[arg(long, env = "TESSERA_ID")]
    pub id: Option<u16>,
    /// Which one of the map to run, by its place among them in the map, counting from 0
    /// (a StatefulSet pod's index).
    #[arg(long, value_name = "INDEX", env = "TESSERA_ORDINAL")]
    pub ordinal: Option<usize>,
}

impl MemberArgs {
    /// The id these arguments name, among the `ids` of the map's servers (or proxies)
    /// in the map's order.
    pub fn pick(&self, ids: &[u16]) -> Result<u16, String> {
        match (self.id, self.ordinal) {
            (Some(id), _) => Ok(id),
            (None, Some(ordinal)) => ids
                .get(ordinal)
                .copied()
                .ok_or_else(|| format!("--ordinal {ordinal} is past the map's {} (counting from 0)", ids.len())),
            (None, None) => Err("give --id or --ordinal".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinal_is_a_place_in_the_map_not_an_id() {
        let ids = [3, 1, 7];
        let by = |id, ordinal| MemberArgs { id, ordinal }.pick(&ids);
        assert_eq!(by(Some(1), None), Ok(1));
        assert_eq!(by(None, Some(0)), Ok(3));
        assert_eq!(by(None, Some(2)), Ok(7));
        assert_eq!(by(None, Some(3)), Err("--ordinal 3 is past the map's 3 (counting from 0)".into()));
    }
}
