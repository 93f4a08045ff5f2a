"""Identity use cases, one async function each, by subject: `auth` (sign-in and one's own session and password),
`users` (an admin managing an account's users), `denials` (the feed other services follow); `throttle` limits
attempts for them."""
