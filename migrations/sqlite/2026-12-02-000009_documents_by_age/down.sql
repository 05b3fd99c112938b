DROP INDEX documents_by_age;
