-- Which protocol a request's status callbacks speak: '' for lethe's own
-- (signed with the client's HMAC secret), or the name of the intake
-- profile that took the request (drp, opendsr), whose format renders and
-- signs them. Each event keeps the format it was rendered in.

-- +goose Up
ALTER TABLE requests ADD COLUMN callback_format TEXT NOT NULL DEFAULT '';
ALTER TABLE callback_events ADD COLUMN format TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE callback_events DROP COLUMN format;
ALTER TABLE requests DROP COLUMN callback_format;
