-- 0011_hosts — many broker hosts on one PostgreSQL cluster (issue 24,
-- docs/design.md "More than one host").  Used only when HOST_ID is set: a
-- single-host broker never reads or writes any of this.
--
-- One row per broker host.  Its relay (meshbroker-relay) registers it and
-- renews lease_until every 2 s to now() + 10 s, by the database's clock,
-- never the host's.  A host whose lease ran out is dead: every reader
-- ignores the presences it tagged (host_id, host_epoch).  The epoch grows
-- when a host registers after its lease ran out, so presences of an earlier
-- life of the host stay dead even when the host comes back.
CREATE TABLE IF NOT EXISTS mesh.broker_host (
  host_id      text PRIMARY KEY CHECK (host_id ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
  epoch        bigint NOT NULL DEFAULT 1,
  lease_until  timestamptz NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS host_id text;
ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS host_epoch bigint;
-- the live presences of one host: the sweep's and the reaper's lookup
CREATE INDEX IF NOT EXISTS presence_host_live_idx ON mesh.presence (host_id, member_id)
  WHERE disconnected_at IS NULL;

-- Register (or re-register) p_host: its epoch out.  A host whose lease is
-- still running keeps its epoch (a relay restart: its workers' presences stay
-- live); else the epoch grows.
CREATE OR REPLACE FUNCTION mesh.host_register(p_host text)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  INSERT INTO mesh.broker_host AS h (host_id, epoch, lease_until)
  VALUES (p_host, 1, now() + interval '10 seconds')
  ON CONFLICT (host_id) DO UPDATE
    SET epoch = CASE WHEN h.lease_until > now() THEN h.epoch ELSE h.epoch + 1 END,
        lease_until = now() + interval '10 seconds',
        started_at = CASE WHEN h.lease_until > now() THEN h.started_at ELSE now() END
  RETURNING epoch
$$;

-- Renew the lease of (p_host, p_epoch): the seconds it now has left, or NULL
-- when the host lost it (another life of the host took over, or it expired:
-- the relay then re-registers under a new epoch).  A worker that died
-- without leaving is closed by the host's reaper (0008, worker/reap.c,
-- keyed by HOST_ID in broker_host), with its peer_left audit row.
CREATE OR REPLACE FUNCTION mesh.host_renew(p_host text, p_epoch bigint)
RETURNS double precision LANGUAGE sql VOLATILE AS $$
  UPDATE mesh.broker_host SET lease_until = now() + interval '10 seconds'
   WHERE host_id = p_host AND epoch = p_epoch AND lease_until > now()
  RETURNING extract(epoch FROM lease_until - now())::double precision
$$;

-- The live presences of member p_member on hosts other than p_self: a claim
-- on this host leaves their rows alone, as it leaves its own host's live
-- slots' rows (which the worker reads from the shared table).
CREATE OR REPLACE FUNCTION mesh.host_live_presences(p_self text, p_member text)
RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(p.id), '{}') FROM mesh.presence p
    JOIN mesh.broker_host h ON h.host_id = p.host_id AND h.epoch = p.host_epoch
   WHERE p.member_id = p_member AND p.disconnected_at IS NULL AND p.host_id <> p_self AND h.lease_until > now()
$$;

-- Live presences: not disconnected, and on a host whose lease runs with the
-- same epoch (an untagged presence, of a single-host broker, counts as live
-- as it always did).
CREATE OR REPLACE FUNCTION mesh.presence_is_live(p_host text, p_epoch bigint, p_disconnected timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT p_disconnected IS NULL AND (p_host IS NULL OR EXISTS (
    SELECT 1 FROM mesh.broker_host h WHERE h.host_id = p_host AND h.epoch = p_epoch AND h.lease_until > now()))
$$;

-- The doorbells of one relay's batch (p_meshes[i], p_members[i]: a member
-- id and its mesh, pairs in any order, repeats allowed): for each other live
-- host holding a live presence of one of them, one NOTIFY per mesh on that
-- host's channel 'mb_<host>' with payload '<p_kind> <mesh> <id>,<id>...'
-- (worker/hosts.h: p_kind 'w' rings, 'c<code>.<reason>' closes; at most 200
-- ids a payload, so it stays under 8,000 bytes; a longer list is split).  The number of notifications out.  Called outside
-- any send transaction by the relay, whose session runs with
-- synchronous_commit off: the commit-time notify lock is never held across a
-- flush (../shared/design/scaleout.md §2.1).
CREATE OR REPLACE FUNCTION mesh.host_ring(p_self text, p_kind text, p_meshes text[], p_members text[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN
    SELECT p.host_id, p.mesh_id, array_agg(DISTINCT p.member_id ORDER BY p.member_id) AS ids
      FROM unnest(p_meshes, p_members) AS t(mesh_id, member_id)
      JOIN mesh.presence p ON p.mesh_id = t.mesh_id AND p.member_id = t.member_id AND p.disconnected_at IS NULL
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

-- The sweep of one host (every 2 s, one statement per host): the members with
-- a live presence on (p_host, p_epoch) that have an undelivered row older
-- than a second that no live presence holds.  Their workers are rung again,
-- which repairs a lost doorbell.
CREATE OR REPLACE FUNCTION mesh.host_sweep(p_host text, p_epoch bigint)
RETURNS TABLE (r_mesh_id text, r_member_id text) LANGUAGE sql STABLE AS $$
  SELECT DISTINCT p.mesh_id, p.member_id
    FROM mesh.presence p
   WHERE p.host_id = p_host AND p.host_epoch = p_epoch AND p.disconnected_at IS NULL
     AND EXISTS (SELECT 1 FROM mesh.delivery d
                  WHERE d.recipient_member_id = p.member_id AND d.delivered_at IS NULL
                    AND d.created_at < now() - interval '1 second'
                    AND (d.claimed_by IS NULL OR NOT EXISTS (
                      SELECT 1 FROM mesh.presence c
                       WHERE c.id = d.claimed_by
                         AND mesh.presence_is_live(c.host_id, c.host_epoch, c.disconnected_at))))
$$;

-- The live presences of a mesh on other live hosts than p_self, for
-- list_peers (oldest first).
CREATE OR REPLACE FUNCTION mesh.host_remote_peers(p_self text, p_mesh text)
RETURNS TABLE (r_presence_id text, r_member_id text, r_pubkey text, r_session_pubkey text, r_display_name text,
               r_session_id text, r_pid integer, r_cwd text, r_status text, r_summary text, r_hostname text,
               r_peer_type text, r_repo text, r_peer_role text, r_visible boolean, r_connected_at text,
               r_host_id text)
LANGUAGE sql STABLE AS $$
  SELECT p.id, p.member_id, m.peer_pubkey, p.session_pubkey, coalesce(p.display_name, m.display_name),
         p.session_id, p.pid, p.cwd, p.status, p.summary, p.hostname, p.peer_type, p.repo, p.peer_role,
         p.visible, to_char(p.connected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), p.host_id
    FROM mesh.presence p JOIN mesh.broker_host h ON h.host_id = p.host_id AND h.epoch = p.host_epoch
                         JOIN mesh.member m ON m.id = p.member_id
   WHERE p.mesh_id = p_mesh AND p.disconnected_at IS NULL AND p.host_id <> p_self
     AND h.lease_until > now() AND m.revoked_at IS NULL
   ORDER BY p.connected_at, p.id
$$;
