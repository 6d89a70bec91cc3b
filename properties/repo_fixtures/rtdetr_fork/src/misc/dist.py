def is_main_process() -> bool:
    return True
