DROP TABLE erased_identity_hashes;
