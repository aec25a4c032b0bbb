# report stage: rules are added by its issue.
