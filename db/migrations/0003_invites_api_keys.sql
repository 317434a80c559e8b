-- 0003_invites_api_keys — signed invites and POST /join, API keys (issue 8;
-- docs/protocol.md §5.3, §6).
-- API keys may expire, and a key may belong to the mesh as a whole (issued by
-- an admin with meshctl, no member) instead of to one member.
ALTER TABLE mesh.api_key ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE mesh.api_key ALTER COLUMN issuer_member_id DROP NOT NULL;
CREATE INDEX IF NOT EXISTS api_key_mesh_idx ON mesh.api_key (mesh_id);
CREATE INDEX IF NOT EXISTS invite_mesh_idx ON mesh.invite (mesh_id);
-- a hook authenticated by a member's key stashes a status for that member only
ALTER TABLE mesh.pending_status ADD COLUMN IF NOT EXISTS member_id text REFERENCES mesh.member(id) ON DELETE CASCADE;

-- One join, atomically: the invite row is locked (FOR UPDATE) for the whole
-- call, so concurrent joins on one invite run one after the other and never
-- take more than max_uses; as a volatile plpgsql function every statement
-- takes a fresh snapshot, so a member inserted by the join that held the lock
-- before us is seen.  Result codes: ok, already (same pubkey, use count
-- unchanged), not_found, mesh_mismatch (the invite is another mesh's than
-- p_mesh, the mesh of the signed payload), revoked, expired, exhausted,
-- member_revoked, mesh_archived.
CREATE OR REPLACE FUNCTION mesh.invite_join(p_token text, p_mesh text, p_pubkey text, p_name text, p_new_id text,
                                            OUT result text, OUT member_id text, OUT mesh_id text,
                                            OUT role text, OUT invite_id text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_inv mesh.invite%ROWTYPE;
  v_mem mesh.member%ROWTYPE;
BEGIN
  SELECT * INTO v_inv FROM mesh.invite WHERE token = p_token FOR UPDATE;
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
  -- the same key again: the member it already is, whatever the invite's state
  SELECT * INTO v_mem FROM mesh.member m WHERE m.mesh_id = v_inv.mesh_id AND lower(m.peer_pubkey) = lower(p_pubkey);
  IF FOUND THEN
    member_id := v_mem.id;
    result := CASE WHEN v_mem.revoked_at IS NULL THEN 'already' ELSE 'member_revoked' END;
    RETURN;
  END IF;
  IF v_inv.revoked_at IS NOT NULL THEN
    result := 'revoked';
  ELSIF v_inv.expires_at <= now() THEN
    result := 'expired';
  ELSIF v_inv.used_count >= v_inv.max_uses THEN
    result := 'exhausted';
  ELSIF EXISTS (SELECT 1 FROM mesh.mesh ms WHERE ms.id = v_inv.mesh_id AND ms.archived_at IS NOT NULL) THEN
    result := 'mesh_archived';
  ELSE
    UPDATE mesh.invite SET used_count = used_count + 1 WHERE id = v_inv.id;
    INSERT INTO mesh.member (id, mesh_id, peer_pubkey, display_name, role)
    VALUES (p_new_id, v_inv.mesh_id, lower(p_pubkey), p_name, v_inv.role);
    member_id := p_new_id;
    result := 'ok';
  END IF;
END
$$;
