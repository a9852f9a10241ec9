// Status written back to Git (DESIGN.md section 6).
export { StatusBranchWriter, rebaseStatusOnto, statusCommitMessage } from "./branch.js";
export type { StatusBranchWriterOptions, StatusFilesProducer, StatusWriteMeta } from "./branch.js";
export { NotesWriter, mergeNotes } from "./notes.js";
export { DiscoveredBranchWriter, proposalsNotIn, rebaseDiscoveredOnto } from "./discovered.js";
export { pushStatus, remoteCopyRef } from "./push.js";
export type { PushStatusOptions } from "./push.js";
export { DESIRED_COMMIT_TRAILER, checkSiteName, discoveredRef, notesRef, statusRef } from "./refs.js";
export { stableYaml } from "./yaml.js";
