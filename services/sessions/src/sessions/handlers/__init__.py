"""Use cases of the sessions service, by subject: one async function per command or query, each owning its unit
of work (`db.unit_of_work(SessionsUnitOfWork)`), raising domain errors and collecting events."""
