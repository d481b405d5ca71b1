-- Questions the Telegram adapter asked after a button press (a force-reply
-- prompt such as "why reject this claim?"). A message that replies to the
-- prompt, from the moderator who pressed, carries the answer: the row says
-- which button it answers (data) and which post to edit afterwards. Rows are
-- deleted when answered, so a second reply does nothing, and pruned after a
-- day.
CREATE TABLE telegram_prompts (
    chat_id          bigint NOT NULL,
    message_id       bigint NOT NULL,  -- the prompt message
    data             text NOT NULL,    -- bot.Ask.Data, handed to Router.Submit
    optional         boolean NOT NULL DEFAULT false, -- "-" answers with no text
    post_chat_id     bigint NOT NULL,  -- the message the button was on
    post_message_id  bigint NOT NULL,
    user_id          bigint NOT NULL,  -- who pressed; only their reply counts
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX telegram_prompts_created_idx ON telegram_prompts (created_at);
