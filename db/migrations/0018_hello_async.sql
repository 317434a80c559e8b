-- 0018_hello_async — the hello's statement off the WAL flush (issue 23,
-- docs/design.md "The chain step off the hello's path").  mesh.hello_join
-- (0013) does what it did, in the same order, with one change: on one host
-- (p_host_id NULL) its transaction commits without waiting for its WAL flush
-- (synchronous_commit off for this transaction only, as the claim, the leave
-- and the chain step).  Before, each hello's commit waited for a flush of its
-- own (0.9-1.2 WAL syncs per hello in a burst), and the hello that found the
-- mesh's chain lock free held it through that commit and flush, so every
-- other hello and leave of the mesh queued behind one flush after another.
--
-- What a PostgreSQL crash before the flush (the next synchronous commit of any
-- session, or the WAL writer within 3 x wal_writer_delay) can lose is the
-- whole transaction, never a part: the presence row with its session key,
-- restored groups and visibility, the member's last_seen_at, a saved_groups
-- update, the applied hook status's delete, and the peer_joined row (chained
-- or pending).  Nothing a client was promised: on one host hello_ack of a
-- first hello goes out before this statement is even sent (the row was never
-- part of the ack), and the connection's live state is its shared-memory
-- slot, which wakes, claims and the peer list read; a peer whose row was lost
-- is the state of a hello whose statement failed with the connection lost,
-- which the worker already lives with.  The chain stays whole: WAL is written
-- in order, so no later chained row (a send's, committed synchronously)
-- survives without the rows before it, and the lost presence row has no
-- peer_left either (the leave's close finds no row).  With HOST_ID other hosts
-- reach the peer through its row and hello_ack waits for it: there the commit
-- still waits for its flush.
CREATE OR REPLACE FUNCTION mesh.hello_join(
    p_check boolean, p_max_peers integer,
    p_presence text, p_mesh text, p_member text, p_pubkey text, p_session_id text, p_pid integer, p_cwd text,
    p_status text, p_status_source text, p_display_name text, p_hostname text, p_peer_type text, p_channel text,
    p_model text, p_protocol_version text, p_capabilities jsonb, p_groups jsonb, p_broker_host text,
    p_worker_pid integer, p_repo text, p_host_id text, p_session_pubkey text, p_peer_role text,
    p_keep_groups boolean, p_saved boolean, p_pending_delete boolean, p_audit text, p_actor_name text)
RETURNS TABLE (r_result text, r_display_name text, r_visible boolean, r_audit_pending boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_id text;
  v_name text;
  v_revoked boolean;
  v_archived boolean;
  v_max integer;
  v_visible boolean;
  v_pending boolean := false;
BEGIN
  v_name := p_actor_name;
  IF p_check THEN
    SELECT m.id, m.display_name, m.revoked_at IS NOT NULL, ms.archived_at IS NOT NULL, coalesce(ms.max_peers, 0)
      INTO v_id, v_name, v_revoked, v_archived, v_max
      FROM mesh.member m JOIN mesh.mesh ms ON ms.id = m.mesh_id
     WHERE m.mesh_id = p_mesh AND m.peer_pubkey = p_pubkey;
    IF NOT FOUND OR v_id <> p_member OR v_revoked OR v_archived OR v_max <> coalesce(p_max_peers, 0)
       OR EXISTS (SELECT 1 FROM mesh.pending_status ps
                   WHERE ps.pid = p_pid AND ps.cwd = p_cwd AND ps.expires_at > clock_timestamp()
                     AND (ps.mesh_id IS NULL OR ps.mesh_id = p_mesh)
                     AND (ps.member_id IS NULL OR ps.member_id = p_member)) THEN
      RETURN QUERY SELECT 'recheck'::text, NULL::text, NULL::boolean, false;
      RETURN;
    END IF;
    v_name := coalesce(p_actor_name, v_name);
  END IF;
  -- one host: this transaction's commit does not wait for its WAL flush
  IF p_host_id IS NULL THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;

  INSERT INTO mesh.presence (id, mesh_id, member_id, session_id, pid, cwd, status, status_source, display_name,
                             hostname, peer_type, channel, model, protocol_version, capabilities, groups,
                             broker_host, worker_pid, repo, host_id, host_epoch, session_pubkey, peer_role)
  VALUES (p_presence, p_mesh, p_member, p_session_id, p_pid, p_cwd, p_status, p_status_source, p_display_name,
          p_hostname, p_peer_type, p_channel, p_model, p_protocol_version, p_capabilities, p_groups,
          p_broker_host, p_worker_pid, p_repo, p_host_id,
          CASE WHEN p_host_id IS NOT NULL THEN (SELECT epoch FROM mesh.broker_host WHERE host_id = p_host_id) END,
          p_session_pubkey, coalesce(p_peer_role, 'control-plane'));
  UPDATE mesh.member SET last_seen_at = now() WHERE id = p_member;

  v_visible := mesh.presence_restore(p_presence, p_keep_groups, p_saved);

  IF p_pending_delete THEN
    DELETE FROM mesh.pending_status WHERE pid = p_pid AND cwd = p_cwd;
  END IF;

  -- mesh.audit_record's rule, inline to know whether the row was left pending
  IF p_audit IS NOT NULL AND EXISTS (SELECT 1 FROM mesh.mesh WHERE id = p_mesh) THEN
    IF pg_try_advisory_xact_lock(hashtextextended('mesh.audit_log:' || p_mesh, 0)) THEN
      PERFORM mesh.audit_chain(p_mesh, 'peer_joined', p_member, v_name, ARRAY[p_audit]);
    ELSE
      INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, payload)
      VALUES (p_mesh, 'peer_joined', p_member, v_name, p_audit);
      v_pending := true;
    END IF;
  END IF;

  RETURN QUERY SELECT 'ok'::text, v_name, coalesce(v_visible, true), v_pending;
END
$$;
