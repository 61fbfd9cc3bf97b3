-- A Coder user create the worker is about to send. When a crash loses the answer, the next
-- reconcile finds the user Coder made by this username and email instead of creating another.
CREATE TABLE coder_user_intents (
    scim_id        TEXT PRIMARY KEY NOT NULL,
    coder_username TEXT NOT NULL,
    email          TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
