// Package console is the chat adapter for a terminal: each line typed is a
// message to the bot, each reply is printed. `tally demo` uses it so a
// newcomer can try Tally without Telegram or Discord credentials.
package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tally-loyalty/tally/bot"
)

// Chat is one console conversation with the bot.
type Chat struct {
	router *bot.Router
	user   bot.User
	mod    bool
}

// New returns a chat as user; moderator marks the user as a moderator.
func New(router *bot.Router, user bot.User, moderator bool) *Chat {
	user.Platform = "console"
	return &Chat{router: router, user: user, mod: moderator}
}

// Say sends one line to the bot and returns its reply. Text without a leading
// slash is read as a command too ("balance" is "/balance"); an empty line
// gets an empty reply.
func (c *Chat) Say(ctx context.Context, line string) bot.Reply {
	line = strings.TrimSpace(line)
	if line == "" {
		return bot.Reply{}
	}
	if !strings.HasPrefix(line, "/") {
		line = "/" + line
	}
	cmd, args, ok := bot.ParseText(line, "")
	if !ok {
		cmd, args = strings.TrimPrefix(line, "/"), nil
	}
	return c.router.Handle(ctx, bot.Request{User: c.user, ChatID: "console", Command: cmd, Args: args, Moderator: c.mod})
}

// Run reads lines from in until EOF, "/quit" or ctx ends, printing a prompt
// and each reply to out.
func (c *Chat) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	lines := make(chan string)
	errs := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
		errs <- sc.Err()
		close(lines)
	}()
	for {
		fmt.Fprint(out, "> ")
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return nil
		case line, ok := <-lines:
			if !ok {
				fmt.Fprintln(out)
				return <-errs
			}
			if t := strings.TrimSpace(line); t == "/quit" || t == "quit" || t == "/exit" || t == "exit" {
				return nil
			}
			if r := c.Say(ctx, line); r.Text != "" {
				fmt.Fprintln(out, r.Text)
			}
		}
	}
}
