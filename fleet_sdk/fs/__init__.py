"""Files written safely: atomic replacement, private folders in RAM."""
