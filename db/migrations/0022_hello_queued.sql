-- 0022_hello_queued — a hello that needs no first claim (issue 23,
-- docs/design.md "The first claim a hello can skip").
--
-- mesh.hello_join (0018) as it was, plus r_queued: whether the member has any
-- undelivered row at all in this transaction's snapshot (claimed or not, for
-- any of its connections or session keys: a superset of what a claim could
-- return), through delivery_pending_idx.  A worker on one host whose hello
-- went through the member cache (the statement's re-check) has, before it
-- sends this statement, claimed its slot in the shared table and bound its
-- worker socket: a send that commits after this snapshot finds the slot and
-- wakes it, and the wake's claim takes the row.  So when r_queued is false
-- and nothing woke the worker meanwhile, its first claim would return
-- nothing, and the worker leaves it out: one transaction (and one round trip
-- through the bouncer) fewer per hello.  Anything else (r_queued true, a wake
-- or a handed push before the answer, the lookup path, HOST_ID) claims as
-- before.  The return type changes, so the function is dropped and created
-- again in this migration's transaction; a worker of the version before reads
-- the first four columns by position and ignores the fifth.
DROP FUNCTION IF EXISTS mesh.hello_join(boolean, integer, text, text, text, text, text, integer, text, text, text, text, text, text, text, text, text, jsonb, jsonb, text, integer, text, text, text, text, boolean, boolean, boolean, text, text);
CREATE FUNCTION mesh.hello_join(
    p_check boolean, p_max_peers integer,
    p_presence text, p_mesh text, p_member text, p_pubkey text, p_session_id text, p_pid integer, p_cwd text,
    p_status text, p_status_source text, p_display_name text, p_hostname text, p_peer_type text, p_channel text,
    p_model text, p_protocol_version text, p_capabilities jsonb, p_groups jsonb, p_broker_host text,
    p_worker_pid integer, p_repo text, p_host_id text, p_session_pubkey text, p_peer_role text,
    p_keep_groups boolean, p_saved boolean, p_pending_delete boolean, p_audit text, p_actor_name text)
RETURNS TABLE (r_result text, r_display_name text, r_visible boolean, r_audit_pending boolean,
               r_queued boolean)
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
      RETURN QUERY SELECT 'recheck'::text, NULL::text, NULL::boolean, false, true;
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

  -- anything undelivered for the member, whoever holds it (this
  -- transaction's snapshot; what commits after it wakes the slot)
  RETURN QUERY SELECT 'ok'::text, v_name, coalesce(v_visible, true), v_pending,
    EXISTS (SELECT 1 FROM mesh.delivery d WHERE d.recipient_member_id = p_member AND d.delivered_at IS NULL);
END
$$;
