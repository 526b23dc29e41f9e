"""Pure data: dataset policies, column classes, transforms, workspace layout and config."""
