//! What the uploader asks of the file-system model once a commit is stored: the library's
//! new head, committed content in place of the stages that held it, and emptied stage
//! files back for reuse. The uploader never changes the model's fields itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::nodes::{content_sig, Body, Ino};
use super::{Handle, Vfs, MAX_FREE_STAGES};
use crate::crypto::ObjectId;
use crate::model::ChunkRef;

impl Vfs {
    /// Records `head` as library `index`'s and points the files staged in `contents`
    /// (stage name → chunks and size) at their chunks, except stages still `needed` by
    /// later journal entries or open here. `discarded` stages belonged to files removed
    /// before the upload. Returns the stages nothing holds any more.
    pub fn apply_commit(
        &mut self,
        index: usize,
        head: ObjectId,
        contents: &HashMap<String, (Vec<ChunkRef>, u64)>,
        discarded: &HashSet<String>,
        needed: &HashSet<String>,
    ) -> Vec<String> {
        self.libraries[index].head = Some(head);
        let open = self.staged_open();
        let mut freed = Vec::new();
        let mut by_stage = self.nodes_by_stage();
        let committed = contents
            .iter()
            .map(|(stage, (chunks, _))| (stage, Some(chunks)));
        for (stage, chunks) in committed.chain(discarded.iter().map(|stage| (stage, None))) {
            let holders = by_stage.remove(stage).unwrap_or_default();
            let kept = needed.contains(stage) || holders.iter().any(|ino| open.contains(ino));
            // A discarded stage's holders were removed: nothing shows them any more.
            if let Some(chunks) = chunks {
                let committed = content_sig(chunks);
                for ino in holders {
                    let Some(node) = self.nodes.get_mut(ino) else {
                        continue;
                    };
                    if kept {
                        // Still staged (open, or written again since): what it holds now
                        // derives from the version just committed, so a later write of it
                        // is no conflict with that version.
                        if let Body::File { base, .. } = &mut node.body {
                            *base = Some(committed.clone());
                        }
                    } else {
                        node.body = Body::File {
                            chunks: Arc::new(chunks.clone()),
                            staged: None,
                            base: Some(committed.clone()),
                        };
                    }
                }
            }
            if kept {
                continue;
            }
            freed.push(stage.clone());
        }
        freed
    }

    /// Whether any staged file is open (showing another client's head would hide it).
    pub fn any_stage_open(&self) -> bool {
        !self.staged_open().is_empty()
    }

    fn staged_open(&self) -> HashSet<Ino> {
        self.handles
            .values()
            .filter_map(|h| match h {
                Handle::Staged { ino, .. } => Some(*ino),
                _ => None,
            })
            .collect()
    }

    /// How many more emptied stage files may be kept for reuse.
    pub fn free_stage_room(&self) -> usize {
        MAX_FREE_STAGES.saturating_sub(self.free_stages.len())
    }

    /// Takes emptied stage files (in the free folder) for new files to reuse.
    pub fn take_free_stages(&mut self, stages: Vec<String>) {
        self.free_stages.extend(stages);
    }
}
