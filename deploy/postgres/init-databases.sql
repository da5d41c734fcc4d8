-- Run once by the postgres image on first start (empty data volume):
-- one database per service that owns data. expiration keeps its state in
-- RabbitMQ and has none.
CREATE DATABASE ticketing_auth;
CREATE DATABASE ticketing_tickets;
CREATE DATABASE ticketing_orders;
CREATE DATABASE ticketing_payments;
CREATE DATABASE ticketing_confirmation;
