package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/tallytest/faketelegram"
)

// End-to-end test of expiry (issue 7): serve sweeps on its own schedule,
// reminds the member once, in their language, on the platform they talk to
// the bot from, then expires the points; the member sees the expiry in their
// history.

// exProgramme reminds an hour before points expire and sweeps every 10 s,
// the shortest sweep_every allowed.
const exProgramme = `[program]
name = "Expiry Rewards"
timezone = "Europe/Berlin"

[expiry]
policy = "none"
reminders = ["1h"]
sweep_every = "10s"
`

// exPatience covers two sweeps.
const exPatience = 25 * time.Second

func TestExpiryE2E_RemindedOnceInGermanThenExpired(t *testing.T) {
	t.Parallel()
	e := startServe(t, exProgramme, true)
	// Serve's first sweep runs 10 s after it started, the second 20 s after:
	// points expiring 14 s from now are due for their reminder at the first
	// and expire by the second.
	expires := time.Now().Add(14 * time.Second).Truncate(time.Second)
	greta := faketelegram.User{ID: 7001, FirstName: "Greta", LanguageCode: "de"}
	e.tgSay(greta, faketelegram.PrivateChat(greta), "/balance")
	e.tgDM(t, greta, "keine Punkte")
	body := fmt.Sprintf(`{"member":"telegram:7001","points":1500,"reason":"Aktion","idempotency_key":"ex-1","expires_at":%q}`,
		expires.UTC().Format(time.RFC3339))
	if code, resp := call(t, "POST", e.base+"/v1/awards", body); code != http.StatusCreated {
		t.Fatalf("award: %d %s", code, resp)
	}

	const reminder = "Kurze Erinnerung"
	exWait(t, "the reminder", func() bool { return e.tgDMs(greta, reminder) > 0 })
	want := fmt.Sprintf("Kurze Erinnerung: %s deiner Punkte verfallen am %s. Schick /balance, um alle deine Punkte zu sehen.",
		seNumber("de", 1500), seDateTime("de", expires))
	if got := e.tgDM(t, greta, reminder); got.Text != want {
		t.Fatalf("reminder\n got %q\nwant %q", got.Text, want)
	}

	// Spendable until the instant they expire; moved to the expired
	// account by the next sweep.
	exWait(t, "the points expired", func() bool {
		return e.count(t, "SELECT count(*) FROM postings WHERE account = 'expired' AND amount = 1500") == 1
	})
	if got := e.available(t, "telegram:7001"); got != 0 {
		t.Fatalf("%d points left after the expiry", got)
	}
	history := e.tgSay(greta, faketelegram.PrivateChat(greta), "/history")
	if r := e.tgReplyTo(t, history); !strings.Contains(r.Text, "verfallen") || !strings.Contains(r.Text, seNumber("de", 1500)) {
		t.Fatalf("history after the expiry: %q", r.Text)
	}
	// The sweep that expired them looked for reminders again after: none.
	time.Sleep(2 * time.Second)
	if n := e.tgDMs(greta, reminder); n != 1 {
		t.Fatalf("%d reminders, want 1", n)
	}
	if n := e.count(t, "SELECT count(*) FROM expiry_reminders WHERE status = 'queued'"); n != 1 {
		t.Fatalf("%d reminders handed on, want 1", n)
	}
	if n := e.count(t, "SELECT count(*) FROM postings WHERE account = 'expired' AND amount = 1500"); n != 1 {
		t.Fatalf("%d expiries of the 1500 points, want 1", n)
	}
}

// exWait checks cond every 50 ms until it holds, failing after exPatience.
func exWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(exPatience); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, exPatience)
		}
	}
}
