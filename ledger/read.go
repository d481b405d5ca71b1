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
	id, err := s.resolve(ctx, ref, false)
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
// older than the transaction id before (0: from the newest). The last entry's
// TxnID is the cursor for the next page.
func (s *Service) History(ctx context.Context, ref MemberRef, before int64, limit int) ([]Entry, error) {
	if limit < 1 || limit > MaxHistory {
		return nil, tally.Errorf(tally.EINVALID, "limit must be from 1 to %d", MaxHistory)
	}
	if before < 0 {
		return nil, tally.Errorf(tally.EINVALID, "before must be a transaction id")
	}
	id, err := s.resolve(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM members WHERE id = $1)", id).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read member: %w", err)
	}
	if !exists {
		return nil, tally.Errorf(tally.ENOTFOUND, errMemberNotFoundFmt, ref)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, kind, points, reason, created_at, expires_at FROM txns
		WHERE member_id = $1 AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, id, before, limit)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.TxnID, &e.Kind, &e.Points, &e.Reason, &e.CreatedAt, &e.ExpiresAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return entries, nil
}
