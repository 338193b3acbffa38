"""placeholder"""
def register(sub, default_folder):
    pass
