-- What the agent's heartbeats last reported about the phone, for the devices
-- page: WeCom's version, the screen and do-not-disturb (NULL: not reported).
ALTER TABLE devices ADD COLUMN wecom_version TEXT;
ALTER TABLE devices ADD COLUMN screen_on INTEGER;
ALTER TABLE devices ADD COLUMN dnd INTEGER;
