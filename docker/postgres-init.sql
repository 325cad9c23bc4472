-- One server, one database per service (each service owns its data).
CREATE DATABASE auth;
CREATE DATABASE main;
