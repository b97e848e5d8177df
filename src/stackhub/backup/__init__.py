"""The backup domain: restic repositories, snapshots of instances, restores."""
