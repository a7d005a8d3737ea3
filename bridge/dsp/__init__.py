"""Signal processing shared by the DSP engines.

``loudness`` measures (libebur128 is the authority), ``limiter`` holds the
oversampled true-peak limiter and ``match`` the reference spectral match.
Everything here works on float arrays shaped (frames, channels).
"""
