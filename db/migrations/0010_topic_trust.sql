-- 0010_topic_trust — who may read what (issue 22; docs/protocol.md §5, §6).
--
-- Key epochs: a topic's key moves forward when a member leaves, is removed or
-- is revoked.  mesh.topic.key_epoch is the current epoch; a sealed copy
-- belongs to one epoch (unique (topic, member, epoch)), so a member keeps the
-- copies of every epoch it was sealed and a new epoch's key is sealed beside
-- them; a post records the epoch it was stored under.
ALTER TABLE mesh.topic ADD COLUMN IF NOT EXISTS key_epoch integer NOT NULL DEFAULT 1 CHECK (key_epoch >= 1);
ALTER TABLE mesh.topic_member_key ADD COLUMN IF NOT EXISTS epoch integer NOT NULL DEFAULT 1 CHECK (epoch >= 1);
ALTER TABLE mesh.topic_member_key DROP CONSTRAINT IF EXISTS topic_member_key_topic_id_member_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS topic_member_key_epoch_idx ON mesh.topic_member_key (topic_id, member_id, epoch);
ALTER TABLE mesh.topic_message ADD COLUMN IF NOT EXISTS key_epoch integer;
CREATE INDEX IF NOT EXISTS topic_mesh_name_idx ON mesh.topic (mesh_id, name) WHERE archived_at IS NULL;

-- Revocation takes effect everywhere at once, whatever path revoked (meshctl
-- member revoke, a moderator's ban, plain SQL): the member's API keys are
-- revoked and every encrypted topic it was in starts a new key epoch.  An
-- archived mesh's keys are revoked too.  (The live sessions are closed by the
-- revoking path: docs/protocol.md §6.)
CREATE OR REPLACE FUNCTION mesh.member_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
    UPDATE mesh.api_key SET revoked_at = now() WHERE issuer_member_id = NEW.id AND revoked_at IS NULL;
    UPDATE mesh.topic t SET key_epoch = t.key_epoch + 1
     WHERE t.encrypted_key_pubkey IS NOT NULL
       AND EXISTS (SELECT 1 FROM mesh.topic_member tm WHERE tm.topic_id = t.id AND tm.member_id = NEW.id);
  END IF;
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS member_revoked ON mesh.member;
CREATE TRIGGER member_revoked AFTER UPDATE OF revoked_at ON mesh.member
  FOR EACH ROW EXECUTE FUNCTION mesh.member_revoked();

CREATE OR REPLACE FUNCTION mesh.mesh_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.archived_at IS NOT NULL AND OLD.archived_at IS NULL THEN
    UPDATE mesh.api_key SET revoked_at = now() WHERE mesh_id = NEW.id AND revoked_at IS NULL;
  END IF;
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS mesh_archived ON mesh.mesh;
CREATE TRIGGER mesh_archived AFTER UPDATE OF archived_at ON mesh.mesh
  FOR EACH ROW EXECUTE FUNCTION mesh.mesh_archived();

-- Invite tokens are stored as the sha256 hex of the token, like API keys:
-- existing rows are migrated in place (a token is base64url JSON, never 64
-- lowercase hex, so a row is hashed once).
CREATE OR REPLACE FUNCTION mesh.invite_token_hash(p_token text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT encode(sha256(convert_to(p_token, 'UTF8')), 'hex') $$;
UPDATE mesh.invite SET token = mesh.invite_token_hash(token) WHERE token !~ '^[0-9a-f]{64}$';

-- The join, as 0003's, with the token looked up by its hash, the invite's
-- state checked before the membership (a revoked, expired or used-up invite
-- says so even for a pubkey that is already a member: it never reveals the
-- membership), and the display name unique (any case) among the mesh's
-- members: name_taken.
CREATE OR REPLACE FUNCTION mesh.invite_join(p_token text, p_mesh text, p_pubkey text, p_name text, p_new_id text,
                                            OUT result text, OUT member_id text, OUT mesh_id text,
                                            OUT role text, OUT invite_id text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_inv mesh.invite%ROWTYPE;
  v_mem mesh.member%ROWTYPE;
BEGIN
  SELECT * INTO v_inv FROM mesh.invite WHERE token = mesh.invite_token_hash(p_token) FOR UPDATE;
  IF NOT FOUND THEN
    result := 'not_found';
    RETURN;
  END IF;
  IF v_inv.mesh_id <> p_mesh THEN
    result := 'mesh_mismatch';
    RETURN;
  END IF;
  mesh_id := v_inv.mesh_id;
  role := v_inv.role;
  invite_id := v_inv.id;
  IF v_inv.revoked_at IS NOT NULL THEN
    result := 'revoked';
    RETURN;
  ELSIF v_inv.expires_at <= now() THEN
    result := 'expired';
    RETURN;
  ELSIF EXISTS (SELECT 1 FROM mesh.mesh ms WHERE ms.id = v_inv.mesh_id AND ms.archived_at IS NOT NULL) THEN
    result := 'mesh_archived';
    RETURN;
  END IF;
  -- the same key again: the member it already is (a live invite's use count unchanged)
  SELECT * INTO v_mem FROM mesh.member m WHERE m.mesh_id = v_inv.mesh_id AND lower(m.peer_pubkey) = lower(p_pubkey);
  IF FOUND THEN
    member_id := v_mem.id;
    result := CASE WHEN v_mem.revoked_at IS NULL THEN 'already' ELSE 'member_revoked' END;
    RETURN;
  END IF;
  IF v_inv.used_count >= v_inv.max_uses THEN
    result := 'exhausted';
  ELSIF EXISTS (SELECT 1 FROM mesh.member m WHERE m.mesh_id = v_inv.mesh_id
                AND lower(m.display_name) = lower(p_name)) THEN
    result := 'name_taken';
  ELSE
    UPDATE mesh.invite SET used_count = used_count + 1 WHERE id = v_inv.id;
    INSERT INTO mesh.member (id, mesh_id, peer_pubkey, display_name, role)
    VALUES (p_new_id, v_inv.mesh_id, lower(p_pubkey), p_name, v_inv.role);
    member_id := p_new_id;
    result := 'ok';
  END IF;
END
$$;
