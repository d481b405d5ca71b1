-- The expiry sweep: lots whose expiry has passed move their remaining points
-- to the 'expired' system account, one ledger transaction per lot with the key
-- 'tally:expire:<lot id>', so a lot expires once however many sweeps run.

-- ledger_expire_due expires the due lots of up to p_members members (those
-- with the soonest-due lots first) and returns what it expired. Each member's
-- row is locked before their lots, in member id order, as debits do; members
-- another sweep holds are skipped, so concurrent sweeps share the work.
CREATE FUNCTION ledger_expire_due(p_now timestamptz, p_members int)
RETURNS TABLE (lot_id bigint, member_id bigint, points bigint, txn_id bigint, expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    m bigint;
    l record;
    tid bigint;
    bal bigint;
BEGIN
    FOR m IN
        SELECT mb.id FROM members mb
        WHERE mb.id IN (SELECT d.member_id FROM lots d
                        WHERE d.state = 'active' AND d.expires_at IS NOT NULL AND d.expires_at <= p_now
                        ORDER BY d.expires_at LIMIT p_members * 10)
        ORDER BY mb.id
        LIMIT p_members
        FOR UPDATE OF mb SKIP LOCKED
    LOOP
        FOR l IN
            SELECT d.id, d.remaining, d.expires_at FROM lots d
            WHERE d.member_id = m AND d.state = 'active' AND d.expires_at IS NOT NULL AND d.expires_at <= p_now
            ORDER BY d.expires_at, d.earned_at, d.id
            FOR UPDATE
        LOOP
            UPDATE members SET balance = balance - l.remaining WHERE id = m RETURNING balance INTO bal;
            INSERT INTO txns (member_id, kind, points, reason, idempotency_key, fingerprint, balance_after, created_at)
            VALUES (m, 'expiry', -l.remaining, 'points expired', 'tally:expire:' || l.id,
                    sha256(convert_to('expire:' || l.id, 'UTF8')), ledger_available(m, bal, p_now), p_now)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id INTO tid;
            IF tid IS NULL THEN
                -- The lot's key exists but the lot is still active: never
                -- expire twice; the ledger check reports the disagreement.
                RAISE EXCEPTION 'lot % is active but was expired by an earlier sweep', l.id;
            END IF;
            INSERT INTO postings (txn_id, account, member_id, amount)
            VALUES (tid, 'member', m, -l.remaining), (tid, 'expired', m, l.remaining);
            INSERT INTO lot_consumptions (txn_id, lot_id, member_id, amount) VALUES (tid, l.id, m, l.remaining);
            UPDATE lots SET remaining = 0, state = 'expired' WHERE id = l.id;
            lot_id := l.id; member_id := m; points := l.remaining; txn_id := tid; expires_at := l.expires_at;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

-- The programme's expiry policy, written by serve at start (one row). Under
-- "inactivity" all of a member's points expire a while after their last
-- earning or spending: each such transaction moves the expiry of the member's
-- active lots to that while after it, in the same transaction.
CREATE TABLE expiry_policy (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    policy        text NOT NULL CHECK (policy IN ('after_earn', 'inactivity', 'none')),
    after_months  integer NOT NULL DEFAULT 0 CHECK (after_months >= 0),
    after_fixed   interval NOT NULL DEFAULT '0',
    timezone      text NOT NULL DEFAULT 'UTC'
);

CREATE FUNCTION ledger_inactivity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    SELECT after_months, after_fixed, timezone INTO p FROM expiry_policy WHERE policy = 'inactivity';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- Calendar months are added in the programme's timezone; a day past the
    -- end of the month is its last day (31 January + 1 month = 28 February).
    UPDATE lots l SET expires_at = ((a.at AT TIME ZONE p.timezone) + make_interval(months => p.after_months)) AT TIME ZONE p.timezone
                                   + p.after_fixed
    FROM (SELECT n.member_id, max(n.created_at) AS at FROM new_txns n
          WHERE n.kind IN ('award', 'task', 'prize', 'purchase', 'deduction')
          GROUP BY n.member_id) a
    WHERE l.member_id = a.member_id AND l.state = 'active';
    RETURN NULL;
END $$;

CREATE TRIGGER txns_inactivity AFTER INSERT ON txns
    REFERENCING NEW TABLE AS new_txns FOR EACH STATEMENT EXECUTE FUNCTION ledger_inactivity();

-- The platform the member last wrote to the bot from: reminders go there.
-- NULL for members who never talked to the bot (they get no reminders).
ALTER TABLE members ADD COLUMN last_platform text;
