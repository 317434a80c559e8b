-- 0016_presence_leave — a connection's leave in one statement (issue 23,
-- docs/design.md "The leave in one statement").  Before, a leaving worker
-- sent up to four, one after another: the last marks (mesh.delivery_mark),
-- the give-back of the rest it claimed, mesh.presence_close (0008) and a
-- waiting chain step (mesh.audit_flush(mesh, true)).  mesh.presence_leave
-- does all four in one transaction, in that order:
--
-- 1. p_mark: delivery ids whose push the peer's TCP acknowledged, marked
--    delivered with mesh.delivery_mark's rule (0004: only rows p_presence
--    holds), and only rows not delivered yet (the worker lists every id it
--    has not seen committed, including those riding on a claim still in
--    flight ahead of this statement, so a claim that failed loses nothing);
-- 2. every other undelivered row p_presence claimed is given back (claimed_by
--    NULL: free for the member's other connections, which the worker wakes
--    after the commit), found through delivery_pending_idx by p_member — the
--    member the presence's claims were made for;
-- 3. the presence row is closed with its peer_left audit row, once
--    (mesh.presence_close's rule: a row already closed, by a reaper that
--    thought the worker gone, is left alone and gets no second peer_left);
-- 4. the chain step for the peer_left row: this transaction waits for the
--    mesh's chain lock (what the separate mesh.audit_flush(mesh, true) did),
--    unless step 2 gave rows back and the lock is busy: those rows stay
--    locked until this commit, and the member's other connections skip
--    locked rows, so then the lock is only tried (as in a send and
--    mesh.hello_join), the peer_left row waits in mesh.audit_pending,
--    r_audit_pending says so, and the worker sends the waiting chain step
--    after the commit (and after its wake).
--
-- The commit does not wait for its WAL flush (synchronous_commit off for this
-- transaction, as the claim and the chain step): the chain lock is held only
-- while the chain step works, never through a flush, so leaves that wait for
-- it (a reconnect storm: hundreds at once in one mesh) follow one another
-- quickly.  What a PostgreSQL crash before the flush (the next synchronous
-- commit of any session, or the WAL writer within 3 × wal_writer_delay) can
-- lose is what a worker killed before its leave leaves behind, and is
-- recovered the same way: the marks (those pushes come again with the same
-- messageId, as after a lost claim), the give-back (rows held by a presence
-- no live slot has are claimed again anyway) and the close with its peer_left
-- (the reaper closes a row whose worker is gone and writes its peer_left).
--
-- Returns one row: the mesh id when this call closed the presence row (NULL
-- when it was closed already), and whether its peer_left was left pending.
-- Generic plans without sequential scans, as mesh.delivery_mark (0004): each
-- statement here has its index (delivery's primary key, delivery_pending_idx,
-- presence's and member's primary keys, the audit tables' mesh indexes).
CREATE OR REPLACE FUNCTION mesh.presence_leave(p_presence text, p_member text, p_mark bigint[])
RETURNS TABLE (r_mesh text, r_audit_pending boolean)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
  v_mesh text;
  v_member text;
  v_name text;
  v_payload text;
  v_given integer;
  v_pending boolean := false;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  IF cardinality(p_mark) > 0 THEN
    UPDATE mesh.delivery SET delivered_at = now()
     WHERE id = ANY(p_mark) AND claimed_by = p_presence AND delivered_at IS NULL;
  END IF;
  UPDATE mesh.delivery SET claimed_by = NULL, claimed_at = NULL
   WHERE recipient_member_id = p_member AND claimed_by = p_presence AND delivered_at IS NULL;
  GET DIAGNOSTICS v_given = ROW_COUNT;

  UPDATE mesh.presence SET disconnected_at = now()
   WHERE id = p_presence AND disconnected_at IS NULL
  RETURNING mesh_id, member_id INTO v_mesh, v_member;
  IF FOUND AND EXISTS (SELECT 1 FROM mesh.mesh WHERE id = v_mesh) THEN
    -- mesh.presence_close's row: the member's name, {"presenceId": id}
    SELECT display_name INTO v_name FROM mesh.member WHERE id = v_member;
    v_payload := '{"presenceId":' || to_json(p_presence)::text || '}';
    IF v_given > 0 AND NOT pg_try_advisory_xact_lock(hashtextextended('mesh.audit_log:' || v_mesh, 0)) THEN
      INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, payload)
      VALUES (v_mesh, 'peer_left', v_member, v_name, v_payload);
      v_pending := true;
    ELSE
      -- held already when it was tried; else waited for
      PERFORM pg_advisory_xact_lock(hashtextextended('mesh.audit_log:' || v_mesh, 0));
      PERFORM mesh.audit_chain(v_mesh, 'peer_left', v_member, v_name, ARRAY[v_payload]);
    END IF;
  END IF;
  RETURN QUERY SELECT v_mesh, v_pending;
END
$$;
