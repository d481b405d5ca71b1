package console_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/bot/console"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tallytest"
)

func TestConsole_ConversationInGerman(t *testing.T) {
	t.Parallel()
	l := ledger.New(tallytest.DB(t), tally.SystemClock{})
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Award(context.Background(), ledger.Award{Member: ledger.MemberRef{Platform: "console", UserID: "1"}, Points: 2500, Key: "w"}); err != nil {
		t.Fatal(err)
	}
	chat := console.New(bot.NewRouter(l, cat, program.Example(), slog.Default()), bot.User{ID: "1", Locale: "de"}, false)
	in := strings.NewReader("balance\n/history\n\n/frobnicate\n/quit\n/balance\n")
	var out bytes.Buffer
	if err := chat.Run(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"2.500", "/frobnicate", "> "} {
		if !strings.Contains(text, want) {
			t.Errorf("transcript lacks %q:\n%s", want, text)
		}
	}
	if strings.Count(text, "2.500") != 2 { // balance and history, nothing after /quit
		t.Errorf("transcript:\n%s", text)
	}
}
