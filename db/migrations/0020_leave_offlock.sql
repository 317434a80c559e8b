-- 0020_leave_offlock — the leave no longer waits for the mesh's chain lock
-- (issue 23, docs/design.md "The leave off the chain lock").
--
-- mesh.presence_leave (0016) does what it did, in the same order, with one
-- change: its peer_left row's chain step only TRIES the mesh's chain lock
-- (as mesh.hello_join, 0018, and a send do).  Before, it waited for the lock
-- inside its statement unless it had given rows back: in a reconnect storm
-- every leave of one mesh queued there, each holding one of the bouncer's
-- server connections, and the returning hellos queued behind them for a
-- server connection (bench/msgstats.sh with SAMPLE_OUT: up to 19 of the 20
-- server connections held by leaves waiting in Lock:advisory).  Now, when the
-- lock is busy, the row goes to mesh.audit_pending and r_audit_pending says
-- so; the leaving worker waits for nothing more.
--
-- A pending row is chained by the next chain step of its mesh that gets the
-- lock (a send, a hello, a leave, a worker's retry: mesh.audit_chain takes
-- every pending row of the mesh first), else by mesh.audit_chain_pending
-- below, which every live worker's sweep (worker/reap.c, at most once per
-- REAP_INTERVAL_SECONDS per runtime directory) and `meshbroker-worker --reap`
-- run, else by the reader: `meshctl audit verify` settles the mesh first
-- (waiting).  Nothing is lost meanwhile: the row is in mesh.audit_pending,
-- committed with the close it records.  What a PostgreSQL crash can lose is
-- 0016's: the leave's whole transaction (its commit does not wait for its WAL
-- flush), which the reaper's close writes again.
CREATE OR REPLACE FUNCTION mesh.presence_leave(p_presence text, p_member text, p_mark bigint[])
RETURNS TABLE (r_mesh text, r_audit_pending boolean)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
  v_mesh text;
  v_member text;
  v_name text;
  v_payload text;
  v_pending boolean := false;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  IF cardinality(p_mark) > 0 THEN
    UPDATE mesh.delivery SET delivered_at = now()
     WHERE id = ANY(p_mark) AND claimed_by = p_presence AND delivered_at IS NULL;
  END IF;
  UPDATE mesh.delivery SET claimed_by = NULL, claimed_at = NULL
   WHERE recipient_member_id = p_member AND claimed_by = p_presence AND delivered_at IS NULL;

  UPDATE mesh.presence SET disconnected_at = now()
   WHERE id = p_presence AND disconnected_at IS NULL
  RETURNING mesh_id, member_id INTO v_mesh, v_member;
  IF FOUND AND EXISTS (SELECT 1 FROM mesh.mesh WHERE id = v_mesh) THEN
    -- mesh.presence_close's row: the member's name, {"presenceId": id}
    SELECT display_name INTO v_name FROM mesh.member WHERE id = v_member;
    v_payload := '{"presenceId":' || to_json(p_presence)::text || '}';
    IF pg_try_advisory_xact_lock(hashtextextended('mesh.audit_log:' || v_mesh, 0)) THEN
      PERFORM mesh.audit_chain(v_mesh, 'peer_left', v_member, v_name, ARRAY[v_payload]);
    ELSE
      INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, payload)
      VALUES (v_mesh, 'peer_left', v_member, v_name, v_payload);
      v_pending := true;
    END IF;
  END IF;
  RETURN QUERY SELECT v_mesh, v_pending;
END
$$;

-- The sweep's chain step: for at most p_limit meshes that have pending rows
-- (found by a loose scan of audit_pending_mesh_idx, one index probe per mesh,
-- so its cost is bounded whatever the table holds), the mesh's chain lock is
-- TRIED and, when free, the mesh's pending rows are chained.  Nobody waits:
-- a mesh whose lock is busy is being chained by its holder (which takes the
-- pending rows first) or is left for the next sweep.  The locks are this
-- transaction's, held until its commit, which does not wait for its WAL flush
-- (as mesh.audit_flush's); a crash that loses it leaves the rows pending
-- again.  Returns the number of rows chained.
CREATE OR REPLACE FUNCTION mesh.audit_chain_pending(p_limit integer)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_n integer := 0;
  v_mesh text;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  FOR v_mesh IN
    WITH RECURSIVE m(id, k) AS (
      (SELECT mesh_id, 1 FROM mesh.audit_pending ORDER BY mesh_id LIMIT 1)
      UNION ALL
      SELECT (SELECT p.mesh_id FROM mesh.audit_pending p WHERE p.mesh_id > m.id ORDER BY p.mesh_id LIMIT 1), m.k + 1
        FROM m WHERE m.id IS NOT NULL AND m.k < p_limit)
    SELECT id FROM m WHERE id IS NOT NULL
  LOOP
    IF pg_try_advisory_xact_lock(hashtextextended('mesh.audit_log:' || v_mesh, 0)) THEN
      v_n := v_n + mesh.audit_chain(v_mesh, NULL, NULL, NULL, NULL);
    END IF;
  END LOOP;
  RETURN v_n;
END
$$;
