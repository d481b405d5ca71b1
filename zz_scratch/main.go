package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/tasks"
)

func main() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/scratch")
	if err != nil {
		panic(err)
	}
	prog, _ := program.Parse([]byte("[expiry]\npolicy = \"none\"\nreminders = [\"1d\"]\n"), "x")
	l := ledger.New(pool, tally.SystemClock{})
	svc := tasks.New(pool, l, prog, tally.SystemClock{}, slog.New(slog.DiscardHandler))
	pool.Exec(ctx, "TRUNCATE expiry_reminders")
	pool.Exec(ctx, "CHECKPOINT")
	t := time.Now()
	run, err := svc.QueueReminders(ctx)
	fmt.Println(time.Since(t), run, err)
}
