// RAda module: see README "Architecture". Filled in by its issue.
