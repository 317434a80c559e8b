-- 0001_schema — the whole data model of docs/protocol.md §10 in schema "mesh".
-- Names follow the reference broker so its tools keep working.
CREATE SCHEMA IF NOT EXISTS mesh;

CREATE TABLE mesh.mesh (
  id            text PRIMARY KEY,
  name          text NOT NULL,
  slug          text NOT NULL UNIQUE,
  owner_pubkey  text NOT NULL,
  visibility    text NOT NULL DEFAULT 'private',
  max_peers     integer CHECK (max_peers IS NULL OR max_peers > 0),
  tier          text NOT NULL DEFAULT 'free',
  created_at    timestamptz NOT NULL DEFAULT now(),
  archived_at   timestamptz
);

CREATE TABLE mesh.member (
  id            text PRIMARY KEY,
  mesh_id       text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  peer_pubkey   text NOT NULL,
  display_name  text NOT NULL,
  role          text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
  joined_at     timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz,
  revoked_at    timestamptz,
  UNIQUE (mesh_id, peer_pubkey)
);

CREATE TABLE mesh.invite (
  id            text PRIMARY KEY,
  mesh_id       text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  token         text NOT NULL UNIQUE,
  max_uses      integer NOT NULL DEFAULT 1 CHECK (max_uses > 0),
  used_count    integer NOT NULL DEFAULT 0 CHECK (used_count >= 0),
  role          text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  created_by    text REFERENCES mesh.member(id) ON DELETE SET NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (used_count <= max_uses)
);

CREATE TABLE mesh.presence (
  id                 text PRIMARY KEY,
  mesh_id            text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  member_id          text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  session_id         text NOT NULL,
  pid                integer NOT NULL,
  cwd                text NOT NULL,
  status             text NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'working', 'dnd')),
  status_source      text NOT NULL DEFAULT 'jsonl' CHECK (status_source IN ('hook', 'manual', 'jsonl')),
  status_updated_at  timestamptz NOT NULL DEFAULT now(),
  summary            text,
  display_name       text,
  hostname           text,
  peer_type          text,
  channel            text,
  model              text,
  protocol_version   text,
  capabilities       jsonb,
  groups             jsonb,
  broker_host        text,
  worker_pid         integer,
  connected_at       timestamptz NOT NULL DEFAULT now(),
  disconnected_at    timestamptz
);
CREATE INDEX presence_member_idx ON mesh.presence (member_id, connected_at DESC);
CREATE INDEX presence_live_idx ON mesh.presence (mesh_id) WHERE disconnected_at IS NULL;

CREATE TABLE mesh.topic (
  id                    text PRIMARY KEY,
  mesh_id               text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  name                  text NOT NULL,
  description           text,
  visibility            text NOT NULL DEFAULT 'public',
  created_by            text REFERENCES mesh.member(id) ON DELETE SET NULL,
  encrypted_key_pubkey  text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  archived_at           timestamptz,
  UNIQUE (mesh_id, name)
);

CREATE TABLE mesh.topic_member (
  topic_id      text NOT NULL REFERENCES mesh.topic(id) ON DELETE CASCADE,
  member_id     text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  role          text NOT NULL DEFAULT 'member' CHECK (role IN ('lead', 'member', 'observer')),
  joined_at     timestamptz NOT NULL DEFAULT now(),
  last_read_at  timestamptz,
  PRIMARY KEY (topic_id, member_id)
);
CREATE INDEX topic_member_member_idx ON mesh.topic_member (member_id);

CREATE TABLE mesh.message_queue (
  id                text PRIMARY KEY,
  mesh_id           text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  sender_member_id  text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  target_spec       text NOT NULL,
  priority          text NOT NULL CHECK (priority IN ('now', 'next', 'low')),
  nonce             text NOT NULL,
  ciphertext        text NOT NULL,
  topic_id          text REFERENCES mesh.topic(id) ON DELETE CASCADE,
  body_version      integer,
  created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at        timestamptz
);
CREATE INDEX message_queue_mesh_idx ON mesh.message_queue (mesh_id, created_at);

-- meshbroker's own: one row per (message, recipient member).  Order = id.
-- claimed_by is the presence id of the connection that took the row; a row
-- claimed by a connection that is no longer live is taken again.
CREATE TABLE mesh.delivery (
  id                   bigserial PRIMARY KEY,
  message_id           text NOT NULL REFERENCES mesh.message_queue(id) ON DELETE CASCADE,
  mesh_id              text NOT NULL,
  recipient_member_id  text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  priority             text NOT NULL CHECK (priority IN ('now', 'next', 'low')),
  created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
  claimed_by           text,
  claimed_at           timestamptz,
  delivered_at         timestamptz,
  UNIQUE (message_id, recipient_member_id)
);
-- the drain: undelivered rows of one recipient, oldest first
CREATE INDEX delivery_pending_idx ON mesh.delivery (recipient_member_id, id) WHERE delivered_at IS NULL;

CREATE TABLE mesh.pending_status (
  id          bigserial PRIMARY KEY,
  mesh_id     text REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  pid         integer NOT NULL,
  cwd         text NOT NULL,
  status      text NOT NULL CHECK (status IN ('idle', 'working', 'dnd')),
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX pending_status_match_idx ON mesh.pending_status (pid, cwd, created_at DESC);

CREATE TABLE mesh.audit_log (
  id                  bigserial PRIMARY KEY,
  mesh_id             text NOT NULL,
  event_type          text NOT NULL,
  actor_member_id     text,
  actor_display_name  text,
  payload             jsonb NOT NULL DEFAULT '{}'::jsonb,
  prev_hash           text,
  hash                text,
  created_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_log_mesh_idx ON mesh.audit_log (mesh_id, id);

CREATE TABLE mesh.topic_message (
  id                text PRIMARY KEY,
  topic_id          text NOT NULL REFERENCES mesh.topic(id) ON DELETE CASCADE,
  sender_member_id  text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  nonce             text NOT NULL,
  ciphertext        text NOT NULL,
  body_version      integer NOT NULL DEFAULT 1 CHECK (body_version IN (1, 2)),
  created_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX topic_message_history_idx ON mesh.topic_message (topic_id, created_at DESC, id DESC);

CREATE TABLE mesh.topic_member_key (
  id              text PRIMARY KEY,
  topic_id        text NOT NULL REFERENCES mesh.topic(id) ON DELETE CASCADE,
  member_id       text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  encrypted_key   text NOT NULL,
  nonce           text NOT NULL,
  sealed_by       text REFERENCES mesh.member(id) ON DELETE SET NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  rotated_at      timestamptz,
  UNIQUE (topic_id, member_id)
);

CREATE TABLE mesh.notification (
  id                 text PRIMARY KEY,
  mesh_id            text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  topic_id           text REFERENCES mesh.topic(id) ON DELETE CASCADE,
  message_id         text,
  member_id          text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  sender_member_id   text REFERENCES mesh.member(id) ON DELETE SET NULL,
  kind               text NOT NULL DEFAULT 'mention',
  created_at         timestamptz NOT NULL DEFAULT now(),
  read_at            timestamptz
);
CREATE INDEX notification_unread_idx ON mesh.notification (member_id, created_at DESC) WHERE read_at IS NULL;

CREATE TABLE mesh.api_key (
  id                text PRIMARY KEY,
  mesh_id           text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  issuer_member_id  text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  label             text,
  secret_hash       text NOT NULL UNIQUE,
  prefix            text NOT NULL,
  capabilities      text[] NOT NULL DEFAULT ARRAY['send', 'read']::text[],
  topic_scopes      text[],
  created_at        timestamptz NOT NULL DEFAULT now(),
  last_used_at      timestamptz,
  revoked_at        timestamptz
);
