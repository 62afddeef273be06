//! stages: placeholder, filled in by its owner.
