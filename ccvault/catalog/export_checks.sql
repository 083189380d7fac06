-- What an export handed over, and whether it still holds (issue 18): the manifest's SHA-256
-- recorded when the job finished (the bundle's identity: the manifest lists every file's
-- SHA-256 and is signed), and the last full check of the bundle on disk (`ccvault exports
-- --verify`): when, and its first problem (NULL with a time: it verified).
ALTER TABLE exports ADD COLUMN manifest_sha256 TEXT;
ALTER TABLE exports ADD COLUMN verified_ms INTEGER;
ALTER TABLE exports ADD COLUMN verify_problem TEXT;
