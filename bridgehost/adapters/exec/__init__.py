"""`type: exec` accounts: any program speaking Scalar/1 on its stdio (design.md §6)."""
