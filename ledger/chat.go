package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// LinkCodeTTL is how long a /link code may be redeemed.
const LinkCodeTTL = 10 * time.Minute

// linkAlphabet leaves out letters and digits people confuse (0/O, 1/I/L).
const linkAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// Profile is what the chat surface needs of the member behind a platform user.
type Profile struct {
	ID     int64
	Name   string
	Locale string // "" until the member chooses one with /lang
	Notify bool
	// SeenLocale is the language their chat app last reported ("" if none).
	SeenLocale string
}

// EnsureMember returns the member behind a platform identity, creating it on
// first contact, and keeps its display name current.
func (s *Service) EnsureMember(ctx context.Context, platform, userID, name string) (Profile, error) {
	ref := MemberRef{Platform: platform, UserID: userID}
	if _, err := ParseMemberRef(ref.String()); err != nil {
		return Profile{}, err
	}
	ids, err := s.resolveMany(ctx, []MemberRef{ref}, true)
	if err != nil {
		return Profile{}, err
	}
	name = clipName(name)
	var p Profile
	var locale, seen *string
	// The name is written only when it changed, so a chat command is a read.
	// The member wrote to the bot, so the platform can reach them again.
	// The platform is remembered when it changed: reminders go to the one
	// the member used last.
	err = s.pool.QueryRow(ctx, `WITH upd AS (
			UPDATE members SET name = CASE WHEN $2 <> '' THEN $2 ELSE name END, unreachable = false, last_platform = $3
			WHERE id = $1 AND ((name IS DISTINCT FROM $2 AND $2 <> '') OR unreachable OR last_platform IS DISTINCT FROM $3)
		)
		SELECT id, CASE WHEN $2 <> '' THEN $2 ELSE name END, locale, notify, seen_locale FROM members WHERE id = $1`, ids[0], name, platform).
		Scan(&p.ID, &p.Name, &locale, &p.Notify, &seen)
	if err != nil {
		return Profile{}, fmt.Errorf("read member: %w", err)
	}
	if locale != nil {
		p.Locale = *locale
	}
	if seen != nil {
		p.SeenLocale = *seen
	}
	return p, nil
}

// clipName keeps display names to 64 characters of valid text.
func clipName(name string) string {
	name = strings.ToValidUTF8(strings.TrimSpace(strings.ReplaceAll(name, "\x00", "")), "")
	if r := []rune(name); len(r) > 64 {
		return string(r[:64])
	}
	return name
}

// SetLocale stores the member's chosen language ("" clears it).
func (s *Service) SetLocale(ctx context.Context, member int64, code string) error {
	var v *string
	if code != "" {
		v = &code
	}
	if _, err := s.pool.Exec(ctx, "UPDATE members SET locale = $2 WHERE id = $1", member, v); err != nil {
		return fmt.Errorf("set locale: %w", err)
	}
	return nil
}

// SetSeenLocale remembers the language the member's chat app reports.
func (s *Service) SetSeenLocale(ctx context.Context, member int64, code string) error {
	if _, err := s.pool.Exec(ctx, "UPDATE members SET seen_locale = $2 WHERE id = $1", member, code); err != nil {
		return fmt.Errorf("set seen locale: %w", err)
	}
	return nil
}

// SetNotify turns the member's reminders on or off.
func (s *Service) SetNotify(ctx context.Context, member int64, on bool) error {
	if _, err := s.pool.Exec(ctx, "UPDATE members SET notify = $2 WHERE id = $1", member, on); err != nil {
		return fmt.Errorf("set notify: %w", err)
	}
	return nil
}

// Expiry is an amount of points that expires at one instant.
type Expiry struct {
	Points int64
	At     time.Time
}

// NextExpiry returns the soonest instant at which some of the member's
// available points expire, with how many; ok is false when none will.
func (s *Service) NextExpiry(ctx context.Context, member int64) (e Expiry, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT expires_at, sum(remaining)::bigint FROM lots
		WHERE member_id = $1 AND state = 'active' AND expires_at > $2
		GROUP BY expires_at ORDER BY expires_at LIMIT 1`, member, s.now()).Scan(&e.At, &e.Points)
	if errors.Is(err, pgx.ErrNoRows) {
		return Expiry{}, false, nil
	}
	if err != nil {
		return Expiry{}, false, fmt.Errorf("next expiry: %w", err)
	}
	return e, true, nil
}

// CreateLinkCode returns a new one-time code that joins the member with the
// account that redeems it within LinkCodeTTL.
func (s *Service) CreateLinkCode(ctx context.Context, member int64, platform string) (string, time.Time, error) {
	now := s.now()
	expires := now.Add(LinkCodeTTL)
	for range 5 {
		b := make([]byte, 8)
		rand.Read(b)
		for i := range b {
			b[i] = linkAlphabet[int(b[i])%len(linkAlphabet)]
		}
		code := string(b)
		tag, err := s.pool.Exec(ctx, `INSERT INTO link_codes (code, member_id, platform, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, code, member, platform, now, expires)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("create link code: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return code, expires, nil
		}
	}
	return "", time.Time{}, errors.New("create link code: no free code after 5 tries")
}

// Link outcomes.
const (
	Linked       = "linked"
	LinkAlready  = "already"
	LinkBadCode  = "bad_code"
	LinkSame     = "same"
	LinkConflict = "conflict"
)

// LinkResult says what Link did: Outcome is one of the Link* constants;
// Survivor and Balance are set when the accounts are one member.
type LinkResult struct {
	Outcome  string
	Survivor int64
	Balance  int64
}

// Link redeems a code for the calling member: the two members become one, the
// older, and the other's points move to it with their expiry intact through
// ledger transactions. Codes are single use; a retry answers LinkAlready.
func (s *Service) Link(ctx context.Context, code string, caller int64) (res LinkResult, err error) {
	start := time.Now()
	defer func() { s.track("link", start, nil, err) }()
	code = strings.ToUpper(strings.TrimSpace(code))
	if len(code) != 8 || strings.Trim(code, linkAlphabet) != "" {
		return LinkResult{Outcome: LinkBadCode}, nil
	}
	for attempt := 1; ; attempt++ {
		var survivor, balance *int64
		err = s.pool.QueryRow(ctx, "SELECT outcome, survivor, balance_after FROM ledger_link($1, $2, $3)", code, caller, s.now()).
			Scan(&res.Outcome, &survivor, &balance)
		if err != nil && retryable(err) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return LinkResult{}, fmt.Errorf("link: %w", err)
		}
		if survivor != nil {
			res.Survivor = *survivor
		}
		if balance != nil {
			res.Balance = *balance
		}
		return res, nil
	}
}

// MarkUnreachable records whether the platform can deliver messages to the
// member behind an identity (false again once they write to the bot).
func (s *Service) MarkUnreachable(ctx context.Context, platform, userID string, unreachable bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE members SET unreachable = $3
		WHERE id = (SELECT member_id FROM identities WHERE platform = $1 AND user_id = $2) AND unreachable <> $3`,
		platform, userID, unreachable)
	if err != nil {
		return fmt.Errorf("mark unreachable: %w", err)
	}
	return nil
}
