-- 0006_groups_moderation — groups, visibility and profile on the presence,
-- what a member keeps of them between connections, and the @group / hidden-
-- aware fan-out (issue 18; docs/protocol.md §12.3, §12.4).
--
-- A presence's groups ([{name, role?}]), visibility and profile live on its
-- mesh.presence row.  The member keeps the last ones any of its connections
-- set (saved_*): a plain hello restores them (hello groups > saved groups >
-- default_groups), and they decide which @group sends an offline member gets.
ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS visible boolean NOT NULL DEFAULT true;
ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS profile jsonb;
ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS stats jsonb;
ALTER TABLE mesh.member ADD COLUMN IF NOT EXISTS default_groups jsonb;
ALTER TABLE mesh.member ADD COLUMN IF NOT EXISTS saved_groups jsonb;
ALTER TABLE mesh.member ADD COLUMN IF NOT EXISTS saved_visible boolean;
ALTER TABLE mesh.member ADD COLUMN IF NOT EXISTS saved_profile jsonb;

-- 1 when groups (a [{name, role?}] array) holds p_name or a descendant of it
-- (a presence in a/b/c matches @a/b and @a)
CREATE OR REPLACE FUNCTION mesh.groups_match(p_groups jsonb, p_name text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(jsonb_typeof(p_groups) = 'array' AND EXISTS (
    SELECT 1 FROM jsonb_array_elements(p_groups) e
    WHERE jsonb_typeof(e) = 'object'
      AND (e->>'name' = p_name OR left(e->>'name', length(p_name) + 1) = p_name || '/')), false)
$$;

-- The recipients of a '*' (p_group NULL) or '@<p_group>' send, fixed at send
-- time: every live member of the mesh but the sender whose live presences
-- (p_live_members: the members holding a live slot; p_visible: the visible
-- live presences, both read from the shared presence table by the worker)
-- include a visible one — in p_group when one is given — and every member
-- without a live presence: all of them for '*' (docs/protocol.md §3.4), for
-- '@<p_group>' those whose saved groups (else default groups) match.
CREATE OR REPLACE FUNCTION mesh.group_recipients(p_mesh text, p_sender text, p_group text, p_live_members text[],
                                                 p_visible text[])
RETURNS SETOF text LANGUAGE sql STABLE AS $$
  SELECT m.id FROM mesh.member m
  WHERE m.mesh_id = p_mesh AND m.revoked_at IS NULL AND m.id <> p_sender
    AND CASE WHEN m.id = ANY(p_live_members) THEN
          EXISTS (SELECT 1 FROM mesh.presence p WHERE p.id = ANY(p_visible) AND p.member_id = m.id
                  AND (p_group IS NULL OR mesh.groups_match(p.groups, p_group)))
        ELSE p_group IS NULL OR mesh.groups_match(coalesce(m.saved_groups, m.default_groups), p_group) END
  ORDER BY m.id
$$;

-- One '*' or '@group' send of worker/groups.c, in one transaction: the
-- message, then one delivery row per recipient (its member id out).
CREATE OR REPLACE FUNCTION mesh.send_group(p_id text, p_mesh text, p_sender text, p_target text, p_group text,
                                           p_priority text, p_nonce text, p_ciphertext text,
                                           p_live_members text[], p_visible text[])
RETURNS SETOF text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext)
  VALUES (p_id, p_mesh, p_sender, p_target, p_priority, coalesce(p_nonce, ''), p_ciphertext);
  RETURN QUERY
    INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority)
    SELECT p_id, p_mesh, r, p_priority FROM mesh.group_recipients(p_mesh, p_sender, p_group, p_live_members,
                                                                  p_visible) r
    RETURNING recipient_member_id;
END
$$;

-- join_group / leave_group on a presence (p_role NULL: no role; p_join
-- false: leave), saved for its member; the number of groups after it, or -1
-- when a join would make more than p_max (nothing is changed then).
CREATE OR REPLACE FUNCTION mesh.presence_group(p_presence text, p_join boolean, p_name text, p_role text,
                                               p_max integer)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_groups jsonb;
  v_member text;
BEGIN
  SELECT coalesce(CASE WHEN jsonb_typeof(groups) = 'array' THEN groups END, '[]'::jsonb), member_id
    INTO v_groups, v_member FROM mesh.presence WHERE id = p_presence FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  SELECT coalesce(jsonb_agg(e ORDER BY o), '[]'::jsonb) INTO v_groups
    FROM jsonb_array_elements(v_groups) WITH ORDINALITY AS t(e, o) WHERE e->>'name' IS DISTINCT FROM p_name;
  IF p_join THEN
    IF jsonb_array_length(v_groups) >= p_max THEN
      RETURN -1;
    END IF;
    v_groups := v_groups || jsonb_build_array(CASE WHEN p_role IS NULL THEN jsonb_build_object('name', p_name)
                                              ELSE jsonb_build_object('name', p_name, 'role', p_role) END);
  END IF;
  UPDATE mesh.presence SET groups = v_groups WHERE id = p_presence;
  UPDATE mesh.member SET saved_groups = v_groups WHERE id = v_member;
  RETURN jsonb_array_length(v_groups);
END
$$;

-- After a hello (p_saved): the presence takes its member's saved visibility
-- and profile, and its saved groups (else default groups) unless the hello
-- brought valid groups of its own (p_keep_groups: those are saved instead).
-- After a session_hello (not p_saved): its own groups, else the member's
-- default groups; visible, no profile; nothing saved.  Returns the
-- presence's visibility.
CREATE OR REPLACE FUNCTION mesh.presence_restore(p_presence text, p_keep_groups boolean, p_saved boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_visible boolean;
  v_groups jsonb;
  v_member text;
BEGIN
  UPDATE mesh.presence p
     SET groups = CASE WHEN p_keep_groups THEN p.groups
                       WHEN p_saved THEN coalesce(m.saved_groups, m.default_groups) ELSE m.default_groups END,
         visible = CASE WHEN p_saved THEN coalesce(m.saved_visible, true) ELSE true END,
         profile = CASE WHEN p_saved THEN m.saved_profile END
    FROM mesh.member m
   WHERE p.id = p_presence AND m.id = p.member_id
  RETURNING p.visible, p.groups, p.member_id INTO v_visible, v_groups, v_member;
  IF p_keep_groups AND p_saved AND v_member IS NOT NULL THEN
    UPDATE mesh.member SET saved_groups = v_groups WHERE id = v_member;
  END IF;
  RETURN coalesce(v_visible, true);
END
$$;
