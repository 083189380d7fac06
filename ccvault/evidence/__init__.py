"""Evidence exports: the job queue, the signed bundle, its verification, the signing key."""
