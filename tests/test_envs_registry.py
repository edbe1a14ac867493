

def test_families_remember_the_spec_they_were_made_from() -> None:
    from metarl.envs import make_family

    assert make_family("halfcheetah-dir?horizon=100").full_name == "halfcheetah-dir?horizon=100"
    assert make_family("point-nav").full_name == "point-nav"
    assert make_family("halfcheetah-dir", horizon=50).full_name == "halfcheetah-dir?horizon=50"
    assert make_family("tabular-mdp?n=3", horizon=5).full_name == "tabular-mdp?n=3&horizon=5"
    rebuilt = make_family(make_family("tabular-mdp?n=3", horizon=5).full_name)
    assert (rebuilt.trial_episodes, rebuilt.horizon) == (3, 5)
