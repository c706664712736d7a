"""The builder: README front matter + files of one commit -> BuildPlan -> a runnable environment."""
