"""Operations: the runner every long job goes through, and its journal."""
