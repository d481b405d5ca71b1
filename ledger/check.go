package ledger

import (
	"context"
	"fmt"
	"math/big"

	"github.com/jackc/pgx/v5"
)

// Violation is one broken invariant (numbered as in DESIGN.md) with what broke it.
type Violation struct {
	Invariant int
	Detail    string
}

// Report is what Check found over the whole database.
type Report struct {
	Members      int64
	Transactions int64
	Postings     int64
	Lots         int64
	// Outstanding is the points members hold (the sum of member accounts).
	// Totals are big integers: many members may hold more than int64 together.
	Outstanding *big.Int
	// System holds the balance of every system account, derived from postings.
	System     map[string]*big.Int
	Violations []Violation
}

// OK reports whether no invariant is broken.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// maxPerCheck bounds how many violations one check lists.
const maxPerCheck = 20

// check is one invariant test: a query whose rows (one text column) each
// describe a violation.
type check struct {
	invariant int
	query     string
}

var checks = []check{
	// 1. Points are int64 everywhere.
	{1, `SELECT format('%s.%s is %s, not bigint', table_name, column_name, data_type)
		FROM information_schema.columns
		WHERE table_schema = current_schema()
		  AND (table_name, column_name) IN (('members','balance'), ('txns','points'), ('txns','balance_after'),
		       ('postings','amount'), ('lots','amount'), ('lots','remaining'), ('lot_consumptions','amount'))
		  AND data_type <> 'bigint'`},
	// 2. Double entry: every transaction has postings that sum to zero, and its
	// member posting is the amount the transaction says.
	{2, `SELECT format('transaction %s: %s postings summing to %s', t.id, count(p.txn_id), coalesce(sum(p.amount::numeric), 0))
		FROM txns t LEFT JOIN postings p ON p.txn_id = t.id
		GROUP BY t.id HAVING count(p.txn_id) < 2 OR coalesce(sum(p.amount::numeric), 0) <> 0`},
	{2, `SELECT format('transaction %s: points %s but member posting %s', t.id, t.points, p.amount)
		FROM txns t LEFT JOIN postings p ON p.txn_id = t.id AND p.account = 'member'
		WHERE p.amount IS DISTINCT FROM t.points OR p.member_id <> t.member_id`},
	{2, `SELECT format('posting of transaction %s names member %s, the transaction member %s', p.txn_id, p.member_id, t.member_id)
		FROM postings p JOIN txns t ON t.id = p.txn_id WHERE p.member_id <> t.member_id`},
	// 3. Balances: never negative; the balance row equals the member's postings
	// and the remaining points of the member's active lots; each lot's remainder
	// is its amount less what was consumed from it.
	{3, `SELECT format('member %s: negative balance %s', id, balance) FROM members WHERE balance < 0`},
	{3, `SELECT format('member %s: balance %s but postings sum to %s', m.id, m.balance, coalesce(p.total, 0))
		FROM members m LEFT JOIN (SELECT member_id, sum(amount) AS total FROM postings WHERE account = 'member' GROUP BY member_id) p
		  ON p.member_id = m.id
		WHERE m.balance <> coalesce(p.total, 0)`},
	{3, `SELECT format('member %s: balance %s but active lots hold %s', m.id, m.balance, coalesce(l.total, 0))
		FROM members m LEFT JOIN (SELECT member_id, sum(remaining) AS total FROM lots WHERE state = 'active' GROUP BY member_id) l
		  ON l.member_id = m.id
		WHERE m.balance <> coalesce(l.total, 0)`},
	{3, `SELECT format('lot %s: amount %s, remaining %s, consumed %s', l.id, l.amount, l.remaining, coalesce(c.total, 0))
		FROM lots l LEFT JOIN (SELECT lot_id, sum(amount) AS total FROM lot_consumptions GROUP BY lot_id) c ON c.lot_id = l.id
		WHERE l.remaining <> l.amount - coalesce(c.total, 0) OR l.remaining < 0
		   OR (l.state = 'spent') <> (l.remaining = 0 AND l.state <> 'expired')`},
	{3, `SELECT format('credit %s: %s points but lots of %s', t.id, t.points, coalesce(sum(l.amount), 0))
		FROM txns t LEFT JOIN lots l ON l.txn_id = t.id
		WHERE t.points > 0 GROUP BY t.id, t.points HAVING coalesce(sum(l.amount), 0) <> t.points`},
	{3, `SELECT format('debit %s: %s points but consumed %s', t.id, t.points, coalesce(sum(c.amount), 0))
		FROM txns t LEFT JOIN lot_consumptions c ON c.txn_id = t.id
		WHERE t.points < 0 GROUP BY t.id, t.points HAVING coalesce(sum(c.amount), 0) <> -t.points`},
	{3, `SELECT format('consumption by transaction %s of lot %s of another member', c.txn_id, c.lot_id)
		FROM lot_consumptions c JOIN lots l ON l.id = c.lot_id JOIN txns t ON t.id = c.txn_id
		WHERE l.member_id <> t.member_id OR c.member_id <> t.member_id`},
	{3, `SELECT format('transaction %s names member %s, who does not exist', t.id, t.member_id)
		FROM txns t WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.id = t.member_id)`},
	{2, `SELECT format('posting to %s belongs to transaction %s, which does not exist', p.account, p.txn_id)
		FROM postings p WHERE NOT EXISTS (SELECT 1 FROM txns t WHERE t.id = p.txn_id)`},
	{3, `SELECT format('lot %s: its transaction %s or member %s does not exist', l.id, l.txn_id, l.member_id)
		FROM lots l WHERE NOT EXISTS (SELECT 1 FROM txns t WHERE t.id = l.txn_id AND t.member_id = l.member_id)
		   OR NOT EXISTS (SELECT 1 FROM members m WHERE m.id = l.member_id)`},
	{3, `SELECT format('consumption of lot %s by transaction %s: one of them does not exist', c.lot_id, c.txn_id)
		FROM lot_consumptions c WHERE NOT EXISTS (SELECT 1 FROM txns t WHERE t.id = c.txn_id)
		   OR NOT EXISTS (SELECT 1 FROM lots l WHERE l.id = c.lot_id)`},
	// 4. FIFO: when a debit took from a lot, no lot due to be spent before it
	// (sooner expiry, then older) still had points left after that debit.
	{4, `SELECT format('debit %s took from lot %s while lot %s, due first, kept %s points', d.id, l.id, e.id,
			e.amount - coalesce((SELECT sum(c2.amount) FROM lot_consumptions c2 WHERE c2.lot_id = e.id AND c2.txn_id <= d.id), 0))
		FROM lot_consumptions c
		JOIN txns d ON d.id = c.txn_id
		JOIN lots l ON l.id = c.lot_id
		JOIN lots e ON e.member_id = l.member_id AND e.id <> l.id AND e.txn_id < d.id AND e.state <> 'pending'
		 AND (e.expires_at IS NULL OR e.expires_at > d.created_at)
		 AND (coalesce(e.expires_at, 'infinity'), e.earned_at, e.id) < (coalesce(l.expires_at, 'infinity'), l.earned_at, l.id)
		WHERE e.amount - coalesce((SELECT sum(c2.amount) FROM lot_consumptions c2 WHERE c2.lot_id = e.id AND c2.txn_id <= d.id), 0) > 0`},
	// 5. Every mutation carries an idempotency key and the fingerprint of its request.
	{5, `SELECT format('transaction %s has no idempotency key or fingerprint', id) FROM txns
		WHERE idempotency_key IS NULL OR idempotency_key = '' OR fingerprint IS NULL OR length(fingerprint) <> 32`},
	// 6. History is append-only and corrections point at what they correct.
	{6, `SELECT format('table %s has no append-only trigger', t) FROM unnest(array['txns', 'postings', 'lot_consumptions']) AS t
		WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
		                  WHERE c.relname = t AND g.tgname = t || '_append_only' AND g.tgenabled <> 'D')`},
	{6, `SELECT format('transaction %s corrects %s, which is not older', id, corrects) FROM txns
		WHERE corrects IS NOT NULL AND corrects >= id`},
}

// Check verifies every ledger invariant over the whole database in one
// repeatable-read snapshot, so concurrent writes cannot make it see a
// half-applied state. It lists up to 20 violations per check.
func (s *Service) Check(ctx context.Context) (Report, error) {
	tx, err := s.pool.BeginTx(ctx, pgxTxRepeatableRead)
	if err != nil {
		return Report{}, fmt.Errorf("check: %w", err)
	}
	defer tx.Rollback(ctx)
	r := Report{System: map[string]*big.Int{}}
	var outstanding string
	err = tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM members), (SELECT count(*) FROM txns),
			(SELECT count(*) FROM postings), (SELECT count(*) FROM lots),
			(SELECT coalesce(sum(balance::numeric), 0)::text FROM members)`).
		Scan(&r.Members, &r.Transactions, &r.Postings, &r.Lots, &outstanding)
	if err != nil {
		return Report{}, fmt.Errorf("check: count: %w", err)
	}
	r.Outstanding, _ = new(big.Int).SetString(outstanding, 10)
	for _, a := range SystemAccounts {
		r.System[a] = new(big.Int)
	}
	rows, err := tx.Query(ctx, `SELECT account, sum(amount::numeric)::text FROM postings WHERE account <> 'member' GROUP BY account`)
	if err != nil {
		return Report{}, fmt.Errorf("check: system accounts: %w", err)
	}
	for rows.Next() {
		var a, v string
		if err := rows.Scan(&a, &v); err != nil {
			return Report{}, err
		}
		r.System[a], _ = new(big.Int).SetString(v, 10)
	}
	if err := rows.Err(); err != nil {
		return Report{}, err
	}
	total := new(big.Int).Set(r.Outstanding)
	for _, v := range r.System {
		total.Add(total, v)
	}
	if total.Sign() != 0 {
		r.Violations = append(r.Violations, Violation{2, fmt.Sprintf("all accounts sum to %s, not 0", total)})
	}
	for _, c := range checks {
		rows, err := tx.Query(ctx, c.query+fmt.Sprintf(" LIMIT %d", maxPerCheck))
		if err != nil {
			return Report{}, fmt.Errorf("check invariant %d: %w", c.invariant, err)
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				return Report{}, err
			}
			r.Violations = append(r.Violations, Violation{c.invariant, d})
		}
		if err := rows.Err(); err != nil {
			return Report{}, fmt.Errorf("check invariant %d: %w", c.invariant, err)
		}
	}
	return r, nil
}

var pgxTxRepeatableRead = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
