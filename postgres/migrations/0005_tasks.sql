-- Community tasks: claims, moderator actions and the messages Tally sends on its
-- own. Each table holds an intent that the queue carries out; a reconciler
-- re-enqueues whatever is due and not done, because Redis may lose its jobs.

-- A member's claim of a task for one period ('once', '2026-11-23', '2026-W48',
-- '2026-11'). A claim is paid through the ledger with the key
-- 'tally:claim:<id>', so paying twice is impossible; paid_txn records it.
CREATE TABLE claims (
    id          bigserial PRIMARY KEY,
    task_key    text NOT NULL,
    member_id   bigint NOT NULL REFERENCES members (id),
    period      text NOT NULL,
    points      bigint NOT NULL CHECK (points > 0),
    evidence    text NOT NULL DEFAULT '',
    -- Where the member claimed from: outcomes are told there.
    platform    text NOT NULL,
    user_id     text NOT NULL,
    locale      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at  timestamptz NOT NULL,
    decided_at  timestamptz,
    decided_by  bigint REFERENCES members (id), -- NULL: approved automatically
    reason      text NOT NULL DEFAULT '',
    full_task   boolean NOT NULL DEFAULT false, -- rejected because the task's limit was reached
    paid_txn    bigint,
    paid_at     timestamptz,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (paid_txn IS NULL OR status = 'approved')
);
-- One live claim per member, task and period; a rejected claim may be made again.
CREATE UNIQUE INDEX claims_once_per_period ON claims (task_key, member_id, period) WHERE status <> 'rejected';
CREATE INDEX claims_approved_idx ON claims (task_key) WHERE status = 'approved';
CREATE INDEX claims_unpaid_idx ON claims (decided_at) WHERE status = 'approved' AND paid_txn IS NULL;
CREATE INDEX claims_member_idx ON claims (member_id, created_at);

-- Every moderator and admin action with its outcome. A moderator award is
-- written 'pending' before it is paid (it counts against the daily limit from
-- then on) and set to its outcome afterwards; the reconciler finishes pending
-- rows a crash left behind.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL,
    actor_kind      text NOT NULL CHECK (actor_kind IN ('moderator', 'admin')),
    actor_member    bigint REFERENCES members (id),
    action          text NOT NULL CHECK (action IN ('award', 'deduct', 'approve', 'reject')),
    target_member   bigint REFERENCES members (id),
    target          text NOT NULL DEFAULT '',   -- the member as the request named it
    points          bigint,
    reason          text NOT NULL DEFAULT '',
    outcome         text NOT NULL,              -- pending, ok, replayed or an error code
    claim_id        bigint REFERENCES claims (id),
    txn_id          bigint,
    idempotency_key text,
    platform        text NOT NULL DEFAULT '',   -- where a moderator acted
    day             date NOT NULL               -- the actor's day in the programme's timezone
);
CREATE INDEX audit_log_limit_idx ON audit_log (actor_member, day) WHERE action = 'award' AND outcome IN ('pending', 'ok');
CREATE INDEX audit_log_pending_idx ON audit_log (at) WHERE outcome = 'pending';

-- Messages Tally sends unprompted. dedupe_key makes recording one idempotent
-- ('claim:12:approved'); the send job is keyed by id.
CREATE TABLE outbound (
    id          bigserial PRIMARY KEY,
    dedupe_key  text NOT NULL UNIQUE,
    member_id   bigint REFERENCES members (id),
    platform    text NOT NULL,
    user_id     text NOT NULL DEFAULT '',       -- a private message to this user
    chat_id     text NOT NULL DEFAULT '',       -- or a post in this chat or channel
    locale      text NOT NULL,
    kind        text NOT NULL,
    params      jsonb NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    done_at     timestamptz,
    CHECK ((user_id = '') <> (chat_id = ''))
);
CREATE INDEX outbound_pending_idx ON outbound (created_at) WHERE status = 'pending';
