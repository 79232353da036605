"""Database layer: schema migrations, the Database class, and every SQL statement of the project."""

from db.database import Database, DatabaseError

__all__ = ["Database", "DatabaseError"]
