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
