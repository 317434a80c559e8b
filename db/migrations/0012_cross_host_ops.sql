-- 0012_cross_host_ops — the operations that reach a connection on another
-- broker host (issue 24, docs/design.md "More than one host"): the doorbells
-- that name connections (presence ids), a session replaced across hosts, a
-- hook's status for a presence on another host, and the live close of a
-- revoked member or an archived mesh on every host.  A single-host broker
-- (HOST_ID unset) never calls the functions; the two triggers look for live
-- presences on a leased host and, finding none there, notify nobody.

-- The doorbells of presences (p_meshes[i], p_presences[i]): for each other
-- live host holding one of them, one NOTIFY per mesh on 'mb_<host>' with
-- payload '<p_kind> <mesh> <id>,<id>...' (worker/hosts.h: 'r' replace,
-- 'k<code>.<reason>' close, 't<code>.<reason>.<ms>' close when stale,
-- 'h<status>.<source>' a hook's status), ≤ 200 ids a payload.  As
-- mesh.host_ring (0011), called by the relay outside any send transaction.
CREATE OR REPLACE FUNCTION mesh.host_ring_presences(p_self text, p_kind text, p_meshes text[], p_presences text[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN
    SELECT p.host_id, p.mesh_id, array_agg(DISTINCT p.id ORDER BY p.id) AS ids
      FROM unnest(p_meshes, p_presences) AS t(mesh_id, presence_id)
      JOIN mesh.presence p ON p.id = t.presence_id AND p.mesh_id = t.mesh_id AND p.disconnected_at IS NULL
      JOIN mesh.broker_host h ON h.host_id = p.host_id AND h.epoch = p.host_epoch
     WHERE h.lease_until > now() AND p.host_id <> p_self
     GROUP BY p.host_id, p.mesh_id
  LOOP
    FOR i IN 0 .. (coalesce(array_length(r.ids, 1), 0) - 1) / 200 LOOP
      PERFORM pg_notify('mb_' || r.host_id, p_kind || ' ' || r.mesh_id || ' ' ||
                        array_to_string(r.ids[i * 200 + 1 : i * 200 + 200], ','));
      n := n + 1;
    END LOOP;
  END LOOP;
  RETURN n;
END
$$;

-- Session replace across hosts (docs/protocol.md §11, §12.1): the new
-- presence p_presence (its row written, with its session key, earlier on
-- the same worker session) replaces every live presence of its member on
-- another live host with the same sessionId, or the same session key: one
-- 'r <mesh> <ids>' doorbell to each such host, whose relay sends the
-- connections the REPLACE envelope a local hello would.  Called by the
-- hello's worker after its presence row, only with HOST_ID; notifies (and
-- takes the notify lock) only when there is something to replace.
CREATE OR REPLACE FUNCTION mesh.host_ring_replace(p_self text, p_presence text)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN
    SELECT o.host_id, o.mesh_id, array_agg(o.id ORDER BY o.id) AS ids
      FROM mesh.presence me
      JOIN mesh.presence o ON o.member_id = me.member_id AND o.id <> me.id AND o.disconnected_at IS NULL
       AND (o.session_id = me.session_id OR (coalesce(me.session_pubkey, '') <> '' AND o.session_pubkey = me.session_pubkey))
      JOIN mesh.broker_host h ON h.host_id = o.host_id AND h.epoch = o.host_epoch
     WHERE me.id = p_presence AND o.host_id <> p_self AND h.lease_until > now()
     GROUP BY o.host_id, o.mesh_id
  LOOP
    PERFORM pg_notify('mb_' || r.host_id, 'r ' || r.mesh_id || ' ' || array_to_string(r.ids[1:200], ','));
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

-- A hook's status (docs/protocol.md §4.3) for a presence on another live
-- host, when none on this host matched: the presence whose hello said
-- p_session, else the newest with p_cwd (and p_pid when not NULL), within
-- the key's mesh and member when given.  Its host gets 'h<status>.<source>
-- <mesh> <presence id>' (p_kind); the presence id out, NULL when none.
CREATE OR REPLACE FUNCTION mesh.host_hook_status(p_self text, p_kind text, p_mesh text, p_member text,
                                                 p_session text, p_pid integer, p_cwd text)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_id text;
  v_mesh text;
  v_host text;
BEGIN
  IF p_session IS NOT NULL THEN
    SELECT p.id, p.mesh_id, p.host_id INTO v_id, v_mesh, v_host FROM mesh.presence p
      JOIN mesh.broker_host h ON h.host_id = p.host_id AND h.epoch = p.host_epoch
     WHERE p.session_id = p_session AND p.disconnected_at IS NULL AND p.host_id <> p_self AND h.lease_until > now()
       AND (p_mesh IS NULL OR p.mesh_id = p_mesh) AND (p_member IS NULL OR p.member_id = p_member)
     ORDER BY p.connected_at DESC LIMIT 1;
  END IF;
  IF v_id IS NULL THEN
    SELECT p.id, p.mesh_id, p.host_id INTO v_id, v_mesh, v_host FROM mesh.presence p
      JOIN mesh.broker_host h ON h.host_id = p.host_id AND h.epoch = p.host_epoch
     WHERE p.cwd = p_cwd AND (p_pid IS NULL OR p.pid = p_pid)
       AND p.disconnected_at IS NULL AND p.host_id <> p_self AND h.lease_until > now()
       AND (p_mesh IS NULL OR p.mesh_id = p_mesh) AND (p_member IS NULL OR p.member_id = p_member)
     ORDER BY p.connected_at DESC LIMIT 1;
  END IF;
  IF v_id IS NULL THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('mb_' || v_host, p_kind || ' ' || v_mesh || ' ' || v_id);
  RETURN v_id;
END
$$;

-- Revocation closes the member's live connections on every host (issue 22's
-- trigger, 0010, plus one doorbell): whatever path revoked it (meshctl member
-- revoke on any host, a moderator's ban, plain SQL), every live host holding
-- a presence of it (this one included: p_self '') gets 'c4002.<reason> <mesh>
-- <member>' at commit, and its relay closes them 4002.  The reason is
-- "revoked" (moderation.c's index 5) unless the revoking statement set
-- mesh.close_reason for its transaction (a ban sets 4: "banned").
CREATE OR REPLACE FUNCTION mesh.member_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_reason text := coalesce(current_setting('mesh.close_reason', true), '');
BEGIN
  IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
    UPDATE mesh.api_key SET revoked_at = now() WHERE issuer_member_id = NEW.id AND revoked_at IS NULL;
    UPDATE mesh.topic t SET key_epoch = t.key_epoch + 1
     WHERE t.encrypted_key_pubkey IS NOT NULL
       AND EXISTS (SELECT 1 FROM mesh.topic_member tm WHERE tm.topic_id = t.id AND tm.member_id = NEW.id);
    PERFORM mesh.host_ring('', 'c4002.' || CASE WHEN v_reason ~ '^[0-9]$' THEN v_reason ELSE '5' END,
                           ARRAY[NEW.mesh_id], ARRAY[NEW.id]);
  END IF;
  RETURN NEW;
END
$$;

-- Archiving a mesh closes its live connections on every host: close 4002
-- "mesh_archived" (moderation.c's index 7), one doorbell per host holding
-- a live presence of it, besides 0010's revocation of its API keys.
CREATE OR REPLACE FUNCTION mesh.mesh_archived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.archived_at IS NOT NULL AND OLD.archived_at IS NULL THEN
    UPDATE mesh.api_key SET revoked_at = now() WHERE mesh_id = NEW.id AND revoked_at IS NULL;
    PERFORM mesh.host_ring('', 'c4002.7', array_agg(l.mesh_id), array_agg(l.member_id))
       FROM (SELECT DISTINCT p.mesh_id, p.member_id FROM mesh.presence p
              WHERE p.mesh_id = NEW.id AND p.disconnected_at IS NULL AND p.host_id IS NOT NULL) l
     HAVING count(*) > 0;
  END IF;
  RETURN NEW;
END
$$;
