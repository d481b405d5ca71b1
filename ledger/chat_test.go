package ledger_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/tallytest"
)

func TestEnsureMember_CreatesOnceAndKeepsNameCurrent(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	p, err := l.EnsureMember(ctx, "telegram", "5", "Ada")
	if err != nil || p.ID == 0 || p.Name != "Ada" || !p.Notify || p.Locale != "" {
		t.Fatalf("first contact = %+v, %v", p, err)
	}
	q, err := l.EnsureMember(ctx, "telegram", "5", "Ada Lovelace")
	if err != nil || q.ID != p.ID || q.Name != "Ada Lovelace" {
		t.Fatalf("second contact = %+v, %v", q, err)
	}
	if err := l.SetLocale(ctx, p.ID, "de"); err != nil {
		t.Fatal(err)
	}
	if err := l.SetNotify(ctx, p.ID, false); err != nil {
		t.Fatal(err)
	}
	r, _ := l.EnsureMember(ctx, "telegram", "5", "")
	if r.Locale != "de" || r.Notify || r.Name != "Ada Lovelace" {
		t.Fatalf("after settings = %+v", r)
	}
	if _, err := l.EnsureMember(ctx, "slack", "5", "x"); err == nil {
		t.Fatal("unknown platform accepted")
	}
}

func TestLink_MovesPointsWithExpiryIntact(t *testing.T) {
	l, clock, pool := newLedger(t)
	ctx := context.Background()
	exp := t0.Add(30 * 24 * time.Hour)
	tg := mustAward(t, l, "telegram:1", 100, "tg-1", nil)
	mustAward(t, l, "telegram:1", 40, "tg-2", &exp)
	clock.Advance(time.Hour)
	dc := mustAward(t, l, "discord:2", 70, "dc-1", &exp)
	mustAward(t, l, "discord:2", 5, "dc-2", tallytest.Ptr(t0.Add(2*time.Hour)))
	clock.Advance(3 * time.Hour) // the 5 points of dc-2 are past their expiry, not swept

	code, expires, err := l.CreateLinkCode(ctx, dc.MemberID, "discord")
	if err != nil || len(code) != 8 || !expires.Equal(clock.Now().Add(ledger.LinkCodeTTL)) {
		t.Fatalf("code %q %v %v", code, expires, err)
	}
	res, err := l.Link(ctx, code, tg.MemberID)
	if err != nil || res.Outcome != ledger.Linked || res.Survivor != tg.MemberID || res.Balance != 210 {
		t.Fatalf("link = %+v, %v; want linked into %d with 210 available", res, err, tg.MemberID)
	}
	m, b, err := l.Member(ctx, ref(t, "discord:2"))
	if err != nil || m.ID != tg.MemberID || len(m.Identities) != 2 || b.Available != 210 {
		t.Fatalf("discord:2 is now %+v %+v, %v", m, b, err)
	}
	// The moved lots keep their expiry: 40 + 70 expire at exp.
	e, ok, err := l.NextExpiry(ctx, tg.MemberID)
	if err != nil || !ok || e.Points != 110 || !e.At.Equal(exp) {
		t.Fatalf("next expiry %+v %v %v", e, ok, err)
	}
	again, err := l.Link(ctx, code, tg.MemberID)
	if err != nil || again.Outcome != ledger.LinkAlready {
		t.Fatalf("retry = %+v, %v", again, err)
	}
	var moved int
	pool.QueryRow(ctx, "SELECT count(*) FROM txns WHERE kind IN ('link_in', 'link_out')").Scan(&moved)
	if moved != 2 {
		t.Fatalf("%d link transactions, want 2", moved)
	}
	mustCheck(t, l)
}

func TestLink_Refusals(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	a, _ := l.EnsureMember(ctx, "telegram", "1", "A")
	b, _ := l.EnsureMember(ctx, "telegram", "2", "B")
	c, _ := l.EnsureMember(ctx, "discord", "3", "C")
	code, _, _ := l.CreateLinkCode(ctx, a.ID, "telegram")
	for name, tc := range map[string]struct {
		code   string
		caller int64
		want   string
	}{
		"own code":        {code, a.ID, ledger.LinkSame},
		"same platform":   {code, b.ID, ledger.LinkConflict},
		"unknown code":    {"ABCDEFGH", c.ID, ledger.LinkBadCode},
		"malformed code":  {"abc'; --", c.ID, ledger.LinkBadCode},
		"lower-case code": {"zzzzzzzz", c.ID, ledger.LinkBadCode},
	} {
		res, err := l.Link(ctx, tc.code, tc.caller)
		if err != nil || res.Outcome != tc.want {
			t.Errorf("%s: %+v, %v; want %s", name, res, err, tc.want)
		}
	}
	clock.Advance(ledger.LinkCodeTTL)
	if res, _ := l.Link(ctx, code, c.ID); res.Outcome != ledger.LinkBadCode {
		t.Fatalf("expired code: %+v", res)
	}
	fresh, _, _ := l.CreateLinkCode(ctx, a.ID, "telegram")
	if res, _ := l.Link(ctx, fresh, c.ID); res.Outcome != ledger.Linked {
		t.Fatalf("fresh code: %+v", res)
	}
	if res, _ := l.Link(ctx, fresh, b.ID); res.Outcome != ledger.LinkBadCode {
		t.Fatalf("used code for a third member: %+v", res)
	}
	mustCheck(t, l)
}

// TestLink_BothSidesAtOnce: each member redeems the other's code at the same
// moment; they end up one member, points counted once.
func TestLink_BothSidesAtOnce(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	for range 5 {
		a := mustAward(t, l, "telegram:"+randDigits(), 30, "a"+randDigits(), nil)
		b := mustAward(t, l, "discord:"+randDigits(), 12, "b"+randDigits(), nil)
		codeA, _, _ := l.CreateLinkCode(ctx, a.MemberID, "telegram")
		codeB, _, _ := l.CreateLinkCode(ctx, b.MemberID, "discord")
		var wg sync.WaitGroup
		results := make([]ledger.LinkResult, 2)
		errs := make([]error, 2)
		wg.Add(2)
		go func() { defer wg.Done(); results[0], errs[0] = l.Link(ctx, codeB, a.MemberID) }()
		go func() { defer wg.Done(); results[1], errs[1] = l.Link(ctx, codeA, b.MemberID) }()
		wg.Wait()
		linked := 0
		for i := range 2 {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			switch results[i].Outcome {
			case ledger.Linked:
				linked++
			case ledger.LinkAlready:
			default:
				t.Fatalf("outcome %+v", results[i])
			}
		}
		if linked < 1 {
			t.Fatalf("nobody linked: %+v", results)
		}
		_, bal, err := l.Member(ctx, ledger.MemberRef{ID: a.MemberID})
		if err != nil || bal.Available != 42 {
			t.Fatalf("survivor balance %+v, %v; want 42", bal, err)
		}
	}
	mustCheck(t, l)
}

var digitsMu sync.Mutex
var digitsN = 1000

func randDigits() string {
	digitsMu.Lock()
	defer digitsMu.Unlock()
	digitsN++
	return strconv.Itoa(digitsN)
}

// TestLink_ReplaysAndMergedIDsFollowTheSurvivor: an award replayed after its
// member was linked still replays, and an internal id of the merged member
// reaches the survivor.
func TestLink_ReplaysAndMergedIDsFollowTheSurvivor(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	a := mustAward(t, l, "telegram:1", 10, "k1", nil)
	b := mustAward(t, l, "discord:2", 20, "k2", nil)
	code, _, _ := l.CreateLinkCode(ctx, a.MemberID, "telegram")
	if res, err := l.Link(ctx, code, b.MemberID); err != nil || res.Survivor != a.MemberID {
		t.Fatalf("link %+v %v", res, err)
	}
	again := mustAward(t, l, "discord:2", 20, "k2", nil)
	if !again.Replayed || again.TxnID != b.TxnID {
		t.Fatalf("replay after link = %+v", again)
	}
	gone := ledger.MemberRef{ID: b.MemberID}
	res, err := l.Award(ctx, ledger.Award{Member: gone, Points: 5, Key: "k3"})
	if err != nil || res.MemberID != a.MemberID || res.Balance != 35 {
		t.Fatalf("award to merged id = %+v, %v", res, err)
	}
	out, err := l.AwardBatch(ctx, []ledger.Award{{Member: gone, Points: 5, Key: "k4"}})
	if err != nil || out[0].Err != nil || out[0].Result.MemberID != a.MemberID || out[0].Result.Balance != 40 {
		t.Fatalf("batch award to merged id = %+v, %v", out, err)
	}
	d, err := l.Deduct(ctx, ledger.Deduction{Member: gone, Points: 40, Key: "k5"})
	if err != nil || d.Balance != 0 {
		t.Fatalf("deduct from merged id = %+v, %v", d, err)
	}
	m, _, err := l.Member(ctx, gone)
	if err != nil || m.ID != a.MemberID {
		t.Fatalf("member by merged id = %+v, %v", m, err)
	}
	mustCheck(t, l)
}

// TestLink_ChainsStayOneHop: a member merged into one that is merged later
// still reaches the live member.
func TestLink_ChainsStayOneHop(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	a := mustAward(t, l, "telegram:1", 1, "a", nil)
	b := mustAward(t, l, "discord:2", 2, "b", nil)
	c := mustAward(t, l, "console:3", 4, "c", nil)
	code, _, _ := l.CreateLinkCode(ctx, c.MemberID, "console")
	if r, err := l.Link(ctx, code, b.MemberID); err != nil || r.Survivor != b.MemberID {
		t.Fatalf("b+c: %+v %v", r, err)
	}
	code, _, _ = l.CreateLinkCode(ctx, b.MemberID, "discord")
	if r, err := l.Link(ctx, code, a.MemberID); err != nil || r.Survivor != a.MemberID || r.Balance != 7 {
		t.Fatalf("a+b: %+v %v", r, err)
	}
	res, err := l.Award(ctx, ledger.Award{Member: ledger.MemberRef{ID: c.MemberID}, Points: 1, Key: "d"})
	if err != nil || res.MemberID != a.MemberID || res.Balance != 8 {
		t.Fatalf("award to the first merged id = %+v, %v", res, err)
	}
	code, _, _ = l.CreateLinkCode(ctx, c.MemberID, "console")
	if r, err := l.Link(ctx, code, a.MemberID); err != nil || r.Outcome != ledger.LinkAlready {
		t.Fatalf("linking a chain member again: %+v %v", r, err)
	}
	mustCheck(t, l)
}
