-- Expiry reminders: at most one per member, expiry instant and offset (the
-- primary key). An instant is a whole second: lots expiring within one
-- second are told together (after_earn expiries keep their earnings'
-- microseconds). The sweep records reminders here, a compact row each; a
-- dispatcher turns the pending ones into outbound messages a window at a
-- time, as fast as the platforms take them (a million reminders recorded at
-- once need not be a million messages queued at once).
--
-- No foreign key to members: its check locks each member's row, which
-- doubled the cost of recording a million reminders. Members are never
-- deleted.
CREATE TABLE expiry_reminders (
    member_id   bigint NOT NULL,
    expires_at  timestamptz NOT NULL,       -- truncated to the second
    reminder    text NOT NULL,              -- the offset as the programme file writes it ('7d')
    remind_at   timestamptz NOT NULL,       -- expires_at less the offset, in the programme's timezone
    points      bigint NOT NULL,            -- what expires at that instant, when recorded
    status      text NOT NULL CHECK (status IN (
                    'pending',              -- to be sent
                    'queued',               -- handed on as outbound_id
                    'superseded',           -- a later reminder for the instant was due first
                    'late',                 -- the points expired before it could be sent
                    'nothing_left',         -- the points were spent, or re-dated by activity, first
                    'silenced',             -- the member turned reminders off
                    'never_talked',         -- the member never wrote to the bot
                    'blocked')),            -- the member blocked the bot
    outbound_id bigint,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (member_id, expires_at, reminder)
);
CREATE INDEX expiry_reminders_pending_idx ON expiry_reminders (remind_at) WHERE status = 'pending';
