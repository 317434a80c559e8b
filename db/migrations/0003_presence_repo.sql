-- 0003: the hello's optional repo field (docs/protocol.md §11: the client's
-- git top-level or remote URL), kept in the presence history beside hostname.
ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS repo text;
