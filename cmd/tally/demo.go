package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/bot/console"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/postgres"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tasks"
)

// demo opens a console chat with the bot on the local services, as a member
// with a few welcome points so balance and history have something to show.
func demo(ctx context.Context, cfg config, args []string, in io.Reader, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	as := fs.String("as", "member", "who you are in the chat: member or moderator")
	lang := fs.String("lang", "", "your chat app's language, e.g. de or pt-BR (/lang overrides it)")
	user := fs.String("user", "", "console user id (default 1 for a member, 2 for a moderator)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *as != "member" && *as != "moderator" {
		return fmt.Errorf("demo: --as must be member or moderator, not %q", *as)
	}
	uid := *user
	if uid == "" {
		uid = map[string]string{"member": "1", "moderator": "2"}[*as]
	}
	if _, err := ledger.ParseMemberRef("console:" + uid); err != nil {
		return fmt.Errorf("demo: --user must be digits")
	}
	prog, err := program.Load(cfg.ProgramPath)
	if err != nil {
		return err
	}
	catalog, err := locales.Load()
	if err != nil {
		return err
	}
	// The demo's welcome points must never mix with a real programme's ledger
	// (a console member could /link them to a real account): it keeps its own
	// database, named after DATABASE_URL's with _demo appended.
	demoURL, err := demoDatabase(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	cfg.DatabaseURL = demoURL
	pool, err := openDB(ctx, cfg, io.Discard)
	if err != nil {
		return err
	}
	defer pool.Close()
	l := ledger.New(pool, tally.SystemClock{})
	// Welcome points, once per console user (the keys make a rerun a replay):
	// some expire in 30 days so /balance shows an expiry.
	ref := ledger.MemberRef{Platform: "console", UserID: uid}
	expires := time.Now().Add(30 * 24 * time.Hour)
	for _, a := range []ledger.Award{
		{Member: ref, Points: 500, Reason: "Welcome to the demo", Key: "demo:welcome:" + uid},
		{Member: ref, Points: 150, Reason: "Launch promotion", Key: "demo:promo:" + uid, ExpiresAt: &expires},
	} {
		if _, err := l.Award(ctx, a); err != nil && tally.ErrorCode(err) != tally.ECONFLICT {
			return fmt.Errorf("demo: welcome points: %w", err)
		}
	}
	router := bot.NewRouter(l, catalog, prog, log)
	svc := tasks.New(pool, l, prog, tally.SystemClock{}, log)
	svc.SetNotifier(&demoQueue{tasks: svc, router: router, out: out})
	router.UseTasks(svc)
	chat := console.New(router, bot.User{ID: uid, Name: "Demo " + *as, Locale: *lang}, *as == "moderator")
	fmt.Fprintf(out, "%s — console chat as %s (console:%s) on database %s. Try /help, /balance, /tasks, /claim check-in, /lang de. /quit or Ctrl-D leaves.\n",
		prog.Name, *as, uid, postgres.Redact(cfg.DatabaseURL))
	return chat.Run(ctx, in, out)
}

// demoDatabase returns dbURL with "_demo" appended to its database name.
func demoDatabase(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil || strings.Trim(u.Path, "/") == "" {
		return "", fmt.Errorf("DATABASE_URL %q: want postgres://host/database", postgres.Redact(dbURL))
	}
	name := strings.Trim(u.Path, "/")
	if !strings.HasSuffix(name, "_demo") {
		name += "_demo"
	}
	u.Path = "/" + name
	return u.String(), nil
}

// demoQueue carries out the demo's work at once, in the process: claims are
// paid when made and what the bot says on its own is printed.
type demoQueue struct {
	tasks  *tasks.Service
	router *bot.Router
	out    io.Writer
}

func (q *demoQueue) PayClaim(ctx context.Context, id int64) error { return q.tasks.PayClaim(ctx, id) }

func (q *demoQueue) Send(ctx context.Context, id int64) error {
	m, err := q.tasks.Message(ctx, id)
	if err != nil {
		return err
	}
	msg, err := q.router.Render(ctx, m)
	if err != nil {
		return err
	}
	fmt.Fprintf(q.out, "[message from the bot] %s\n", msg.Text)
	return q.tasks.Finish(ctx, id, tasks.Sent, "")
}
