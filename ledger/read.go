package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally"
)

// Member returns the member a reference names with its balance.
func (s *Service) Member(ctx context.Context, ref MemberRef) (Member, Balance, error) {
	id, err := s.resolveLive(ctx, ref)
	if err != nil {
		return Member{}, Balance{}, err
	}
	var m Member
	var b Balance
	var locale *string
	err = s.pool.QueryRow(ctx, `SELECT m.id, m.name, m.locale, m.created_at,
			ledger_available(m.id, m.balance, $2),
			coalesce((SELECT sum(remaining) FROM lots WHERE member_id = m.id AND state = 'pending' AND remaining > 0), 0)::bigint,
			array(SELECT platform || ':' || user_id FROM identities WHERE member_id = m.id ORDER BY created_at, platform, user_id)
		FROM members m WHERE m.id = $1`, id, s.now()).
		Scan(&m.ID, &m.Name, &locale, &m.CreatedAt, &b.Available, &b.Pending, &m.Identities)
	if errors.Is(err, pgx.ErrNoRows) {
		return Member{}, Balance{}, tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, ref)
	}
	if err != nil {
		return Member{}, Balance{}, fmt.Errorf("read member: %w", err)
	}
	if locale != nil {
		m.Locale = *locale
	}
	return m, b, nil
}

// History returns up to limit of the member's transactions, newest first,
// older than the transaction id before (0: from the newest), and whether older
// ones follow. The last entry's TxnID is the cursor for the next page.
func (s *Service) History(ctx context.Context, ref MemberRef, before int64, limit int) ([]Entry, bool, error) {
	if limit < 1 || limit > MaxHistory {
		return nil, false, tally.Errorf(tally.EINVALID, "limit must be from 1 to %d", MaxHistory)
	}
	if before < 0 {
		return nil, false, tally.Errorf(tally.EINVALID, "before must be a transaction id")
	}
	id, err := s.resolveLive(ctx, ref)
	if err != nil {
		return nil, false, err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM members WHERE id = $1)", id).Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("read member: %w", err)
	}
	if !exists {
		return nil, false, tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, ref)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, kind, points, reason, created_at, expires_at FROM txns
		WHERE member_id = $1 AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, id, before, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("read history: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.TxnID, &e.Kind, &e.Points, &e.Reason, &e.CreatedAt, &e.ExpiresAt)
		return e, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("read history: %w", err)
	}
	if len(entries) > limit {
		return entries[:limit], true, nil
	}
	return entries, false, nil
}

// Describe returns the named members with their identities, for responses
// that name members. Ids that name nobody are left out.
func (s *Service) Describe(ctx context.Context, ids []int64) (map[int64]Member, error) {
	rows, err := s.pool.Query(ctx, `SELECT m.id, m.name, coalesce(m.locale, ''), m.created_at,
			array(SELECT platform || ':' || user_id FROM identities WHERE member_id = m.id ORDER BY created_at, platform, user_id)
		FROM members m WHERE m.id = ANY ($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("describe members: %w", err)
	}
	out := make(map[int64]Member, len(ids))
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.ID, &m.Name, &m.Locale, &m.CreatedAt, &m.Identities); err != nil {
			return nil, fmt.Errorf("describe members: %w", err)
		}
		out[m.ID] = m
	}
	return out, rows.Err()
}
