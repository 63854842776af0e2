//! Which workspace each entity of a configuration belongs to, and which
//! workspaces' consumers a workspace's routes accept. Only configurations
//! assembled from the store (`gatehouse-control`) fill it in; a file
//! configuration leaves it empty and everything is workspace `default`.

/// The workspace of each entity, by index into the entity sections of
/// [`crate::Config`]. Not part of the file format (never read or written
/// by serde): `gatehouse-control` sets it when it assembles the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspaces {
    /// Workspace names; an entity's workspace is an index into this list.
    /// Index 0 is always `default` when the list is not empty.
    pub names: Vec<String>,
    /// For each workspace (same index as `names`), the other workspaces
    /// whose consumers (their credentials, apps and consumer plugins) its
    /// routes also accept, in the order they are tried after its own.
    pub accepts: Vec<Vec<usize>>,
    /// Workspace of `services[i]`.
    pub services: Vec<usize>,
    /// Workspace of `routes[i]`.
    pub routes: Vec<usize>,
    /// Workspace of `consumers[i]`.
    pub consumers: Vec<usize>,
    /// Workspace of `apis[i]`.
    pub apis: Vec<usize>,
    /// Workspace of `plans[i]`.
    pub plans: Vec<usize>,
    /// Workspace of `subscriptions[i]`.
    pub subscriptions: Vec<usize>,
}

impl Workspaces {
    /// How many workspaces there are (at least one: `default`).
    pub fn count(&self) -> usize {
        self.names.len().max(1)
    }

    /// The name of workspace `id` (`default` for a file configuration).
    pub fn name(&self, id: usize) -> &str {
        self.names.get(id).map_or("default", String::as_str)
    }

    /// The workspace of `section[index]` (`services`, `routes`,
    /// `consumers`, `apis`, `plans`, `subscriptions`); global plugins and
    /// anything of a file configuration are workspace 0, `default`.
    pub fn of(&self, section: &str, index: usize) -> usize {
        let list = match section {
            "services" => &self.services,
            "routes" => &self.routes,
            "consumers" => &self.consumers,
            "apis" => &self.apis,
            "plans" => &self.plans,
            "subscriptions" => &self.subscriptions,
            _ => return 0,
        };
        // An id past `names` cannot come from `gatehouse-control`; it is
        // read as `default` rather than indexing out of bounds.
        list.get(index)
            .copied()
            .filter(|&w| w < self.count())
            .unwrap_or(0)
    }

    /// The workspaces whose consumers routes of workspace `id` accept: its
    /// own first, then the ones it opted into.
    pub fn accepted_by(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(id).chain(
            self.accepts
                .get(id)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&w| w < self.count()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_config_is_all_default_and_bad_ids_read_as_default() {
        let file = Workspaces::default();
        assert_eq!(
            (file.count(), file.name(0), file.of("routes", 7)),
            (1, "default", 0)
        );
        assert_eq!(file.accepted_by(0).collect::<Vec<_>>(), [0]);

        let store = Workspaces {
            names: vec!["default".into(), "a".into(), "b".into()],
            accepts: vec![vec![], vec![], vec![0, 9, 1]],
            routes: vec![1, 2, 5],
            ..Workspaces::default()
        };
        assert_eq!(store.of("routes", 1), 2);
        assert_eq!(store.of("routes", 2), 0, "out of range");
        assert_eq!(store.of("plugins", 0), 0, "global plugins are default's");
        assert_eq!(store.accepted_by(2).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(store.accepted_by(1).collect::<Vec<_>>(), [1]);
    }
}
