package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally"
)

// Kinds of messages Tally sends on its own.
const (
	KindReview        = "claim_review"   // a manual claim posted to a review chat, with Approve and Reject
	KindClaimApproved = "claim_approved" // to the member, once paid
	KindClaimRejected = "claim_rejected" // to the member, with the moderator's reason
	KindClaimFull     = "claim_full"     // to the member: approved too late, the task was full
	// KindReviewUpdate edits a sent review post (params: claim, post — the
	// outbound id of the post) once its claim was decided elsewhere.
	KindReviewUpdate = "claim_review_update"
)

// MaxAttempts is how many times a message is tried before it is given up.
const MaxAttempts = 10

// Message is one message Tally sends on its own: to a member privately
// (UserID) or to a chat (ChatID), rendered when sent in Locale.
type Message struct {
	ID       int64
	Member   int64 // 0 for posts to a chat
	Platform string
	UserID   string
	ChatID   string
	// Locale is the member's chosen language if they chose one since,
	// else the language recorded with the message.
	Locale string
	Kind   string
	Params map[string]any
	Status string
	// Unreachable is set when the member blocked the bot.
	Unreachable bool
	Attempts    int
}

// Param returns an integer parameter of the message.
func (m Message) Param(name string) int64 {
	switch v := m.Params[name].(type) {
	case json.Number:
		n, _ := v.Int64()
		return n
	case int64:
		return v
	case int:
		return int64(v)
	}
	return 0
}

type outMessage struct {
	dedupe                   string
	member                   int64
	platform, userID, chatID string
	locale, kind             string
	params                   map[string]any
}

// record writes a message to send in tx and returns its id; 0 when a message
// with the same dedupe key exists (it is sent, or on its way).
func (s *Service) record(ctx context.Context, tx pgx.Tx, m outMessage) (int64, error) {
	var member *int64
	if m.member != 0 {
		member = &m.member
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO outbound (dedupe_key, member_id, platform, user_id, chat_id, locale, kind, params, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`,
		m.dedupe, member, m.platform, m.userID, m.chatID, m.locale, m.kind, jsonParams(m.params), s.now()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("record message: %w", err)
	}
	return id, nil
}

// Message returns a message to send.
func (s *Service) Message(ctx context.Context, id int64) (Message, error) {
	var m Message
	var member *int64
	var chosen *string
	var params []byte
	err := s.pool.QueryRow(ctx, `SELECT o.id, o.member_id, o.platform, o.user_id, o.chat_id, o.locale, m.locale, o.kind, o.params,
			o.status, coalesce(m.unreachable, false), o.attempts
		FROM outbound o LEFT JOIN members m ON m.id = o.member_id WHERE o.id = $1`, id).
		Scan(&m.ID, &member, &m.Platform, &m.UserID, &m.ChatID, &m.Locale, &chosen, &m.Kind, &params, &m.Status, &m.Unreachable, &m.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, tally.Errorf(tally.ENOTFOUND, "message %d not found", id)
	}
	if err != nil {
		return Message{}, fmt.Errorf("read message: %w", err)
	}
	if member != nil {
		m.Member = *member
	}
	if chosen != nil && *chosen != "" {
		m.Locale = *chosen
	}
	dec := json.NewDecoder(strings.NewReader(string(params)))
	dec.UseNumber()
	if err := dec.Decode(&m.Params); err != nil {
		return Message{}, fmt.Errorf("read message %d params: %w", id, err)
	}
	return m, nil
}

// Message outcomes.
const (
	Sent    = "sent"
	Skipped = "skipped" // the recipient cannot be reached, or the platform is not running
	Failed  = "failed"  // given up after MaxAttempts
)

// Sent records that a message went out, with where it went (ref, "" when the
// platform does not say) for later edits.
func (s *Service) Sent(ctx context.Context, id int64, ref string) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbound SET status = 'sent', sent_ref = $2, last_error = '', done_at = $3
		WHERE id = $1 AND status = 'pending'`, id, ref, s.now())
	if err != nil {
		return fmt.Errorf("finish message: %w", err)
	}
	return nil
}

// SentRef returns where a sent message went ("" when it is not sent or the
// platform did not say).
func (s *Service) SentRef(ctx context.Context, id int64) (string, error) {
	var ref string
	err := s.pool.QueryRow(ctx, "SELECT sent_ref FROM outbound WHERE id = $1 AND status = 'sent'", id).Scan(&ref)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read message: %w", err)
	}
	return ref, nil
}

// Finish records a message's final outcome; why says what happened for
// skipped and failed ones. Only a pending message changes.
func (s *Service) Finish(ctx context.Context, id int64, status, why string) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbound SET status = $2, last_error = $3, done_at = $4 WHERE id = $1 AND status = 'pending'`,
		id, status, clipText(why, 500), s.now())
	if err != nil {
		return fmt.Errorf("finish message: %w", err)
	}
	return nil
}

// Attempted records a failed try; after MaxAttempts the message is given up.
// It returns whether the message is still to be tried.
func (s *Service) Attempted(ctx context.Context, id int64, why string) (bool, error) {
	var attempts int
	err := s.pool.QueryRow(ctx, `UPDATE outbound SET attempts = attempts + 1, last_error = $2,
			status = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE status END,
			done_at = CASE WHEN attempts + 1 >= $3 THEN $4 ELSE done_at END
		WHERE id = $1 AND status = 'pending' RETURNING attempts`, id, clipText(why, 500), MaxAttempts, s.now()).Scan(&attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record attempt: %w", err)
	}
	return attempts < MaxAttempts, nil
}

// MarkUnreachable notes that the member blocked the bot; their messages are
// skipped until they write to it again.
func (s *Service) MarkUnreachable(ctx context.Context, member int64) error {
	_, err := s.pool.Exec(ctx, "UPDATE members SET unreachable = true WHERE id = $1", member)
	if err != nil {
		return fmt.Errorf("mark unreachable: %w", err)
	}
	return nil
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Due lists work whose intent is recorded and older than olderThan but not
// done: approved unpaid claims, unsent messages, moderator actions a crash
// interrupted. The reconciler hands them to the queue again.
type Due struct {
	Claims   []int64
	Messages []int64
	Actions  []int64
}

// Overdue returns up to limit of each kind of unfinished work older than age.
func (s *Service) Overdue(ctx context.Context, age time.Duration, limit int) (Due, error) {
	before := s.now().Add(-age)
	var d Due
	for _, q := range []struct {
		sql string
		out *[]int64
	}{
		{"SELECT id FROM claims WHERE status = 'approved' AND paid_txn IS NULL AND decided_at < $1 ORDER BY decided_at LIMIT $2", &d.Claims},
		{"SELECT id FROM outbound WHERE status = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2", &d.Messages},
		{"SELECT id FROM audit_log WHERE outcome = 'pending' AND at < $1 ORDER BY at LIMIT $2", &d.Actions},
	} {
		rows, err := s.pool.Query(ctx, q.sql, before, limit)
		if err != nil {
			return Due{}, fmt.Errorf("read overdue work: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return Due{}, fmt.Errorf("read overdue work: %w", err)
		}
		*q.out = ids
	}
	return d, nil
}
